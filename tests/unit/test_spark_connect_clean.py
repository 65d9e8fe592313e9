"""Jobs and their I/O run over Spark Connect (Databricks serverless and shared compute are Spark Connect), so they
use none of the classic-only APIs: the SparkContext, the JVM gateway, or Delta's ``DeltaTable`` Python API.
``lakehouse.spark.session`` builds classic sessions for jobs with a driver of their own and is left out."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLASSIC_ONLY_ATTRIBUTES = {"sparkContext", "_jvm", "_jsc", "_jsparkSession", "_jdf"}
CLASSIC_ONLY_MODULES = {"delta.tables", "py4j"}


def _classic_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in CLASSIC_ONLY_ATTRIBUTES:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in CLASSIC_ONLY_MODULES:
            found.append(f"{path.name}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Import):
            found += [
                f"{path.name}:{node.lineno} import {alias.name}"
                for alias in node.names
                if alias.name in CLASSIC_ONLY_MODULES
            ]
    return found


def test_jobs_and_their_io_use_no_classic_only_api() -> None:
    files = [p for folder in ("jobs", "io", "transforms") for p in sorted((ROOT / "spark" / folder).glob("*.py"))]
    assert len(files) > 10
    assert [use for path in files for use in _classic_uses(path)] == []


def test_the_check_finds_a_classic_only_use(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from delta.tables import DeltaTable\nimport py4j\n\ndef f(spark):\n    return spark.sparkContext._jvm\n"
    )
    assert sorted(_classic_uses(sample)) == [
        "sample.py:1 from delta.tables",
        "sample.py:2 import py4j",
        "sample.py:5 ._jvm",
        "sample.py:5 .sparkContext",
    ]
