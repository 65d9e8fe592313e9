"""Run a job module the way the environment deploys Spark (``spark.deploy``): with ``spark-submit`` against
the environment's master (``local[*]`` on a laptop, ``spark://``/``yarn``/``k8s://`` on a cluster), as a Spark
Connect client of a long-running server, or in this process. The command line comes from config only."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

from lakehouse.config.settings import Settings
from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.session import OWN_DRIVER_ENV, session_conf

log = logging.getLogger(__name__)
LOG4J2_CONFIG = Path(__file__).resolve().parent / "log4j2.properties"


def spark_home() -> Path:
    """SPARK_HOME, or the pyspark package (which ships bin/spark-submit)."""
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    import pyspark

    return Path(pyspark.__file__).parent


def submit_base(settings: Settings, name: str) -> list[str]:
    """spark-submit with the environment's master, jars and properties, up to the application to run."""
    if settings.spark.master == "databricks":
        raise SparkJobError(
            "the databricks environment cannot run jobs yet: running them as Databricks runs is planned "
            "(see README, Planned); use LAKEHOUSE_ENV=local"
        )
    conf = session_conf(settings)
    jars = conf.pop("spark.jars", "")
    argv = [str(spark_home() / "bin" / "spark-submit"), "--master", settings.spark.master, "--name", name]
    if "spark.driver.extraJavaOptions" not in conf:
        argv += ["--driver-java-options", f"-Dlog4j2.configurationFile=file:{LOG4J2_CONFIG}"]
    if jars:
        argv += ["--jars", jars]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return argv


def submit_command(settings: Settings, module: str, args: list[str]) -> list[str]:
    """The spark-submit argv for running ``module`` (a lakehouse.spark.jobs module) with ``args``."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SparkJobError(f"no job module {module!r}: expected one of lakehouse.spark.jobs.*")
    return [*submit_base(settings, module), spec.origin, *args]


def submit_env(settings: Settings) -> dict[str, str]:
    """Environment of a spark-submit child: this process's, with the driver and workers on this Python."""
    return {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "LAKEHOUSE_HOME": str(settings.home),
        "LAKEHOUSE_ENV": settings.name,
        OWN_DRIVER_ENV: "1",
    }


def job_exit_code(settings: Settings, module: str, args: list[str], *, streaming: bool = False) -> int:
    """Run the job (see ``run_job``) and return the exit code of a spark-submit run (0, or 2 for bad data, input
    or config); a job run in this process raises LakehouseError for those instead."""
    try:
        run_job(settings, module, args, streaming=streaming)
    except SparkSubmitError as exc:
        return exc.exit_code
    return 0


class SparkSubmitError(SparkJobError):
    """A spark-submit run exited non-zero; ``user_error`` is True for exit code 2 (bad input, config or data:
    retrying will not help)."""

    def __init__(self, module: str, args: list[str], exit_code: int, tail: list[str]) -> None:
        self.exit_code = exit_code
        self.user_error = exit_code == 2
        self.tail = tail
        reason = next((line for line in reversed(tail) if " ERROR " in line or "error" in line.lower()), "")
        super().__init__(f"{module} {' '.join(args)} exited with code {exit_code}: {reason.strip()}")


def run_spark_job(settings: Settings, module: str, args: list[str]) -> None:
    """spark-submit a job, streaming its output to this process's stdout; raise SparkSubmitError on failure."""
    from collections import deque

    argv = submit_command(settings, module, args)
    env = submit_env(settings)
    log.info("spark-submit %s %s (master %s)", module, " ".join(args), settings.spark.master)
    tail: deque[str] = deque(maxlen=60)
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            tail.append(line.rstrip("\n"))
    if proc.returncode != 0:
        raise SparkSubmitError(module, args, proc.returncode, list(tail))


def run_job(settings: Settings, module: str, args: list[str], *, streaming: bool = False) -> None:
    """Run a job as ``spark.deploy`` says: ``spark-submit`` (SparkSubmitError on failure), or the job's ``main``
    in this process, either as a Spark Connect client (``connect``; streaming jobs are spark-submitted, they
    need a driver of their own) or hosting the driver (``in-process``). In this process, bad input or config
    raises LakehouseError and anything else propagates as it is."""
    deploy = settings.spark.deploy
    if deploy == "spark-submit" or (deploy == "connect" and streaming):
        run_spark_job(settings, module, args)
        return
    log.info("%s %s (%s)", module, " ".join(args), deploy)
    try:
        importlib.import_module(module).main(args)
    finally:
        if deploy == "connect":
            _release_connect_session()


def _release_connect_session() -> None:
    """End this process's Spark Connect session, freeing its state on the server (the server keeps running)."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
