"""The Python worker daemon: Spark's repeated archives leave the workers' path, anything else stays."""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyspark
from pyspark.sql import SparkSession

from lakehouse.spark.python_daemon import drop_repeated_archives

PYSPARK_HOME = Path(pyspark.__file__).parent
SPARK_ARCHIVES = [
    str(PYSPARK_HOME / "python" / "lib" / "pyspark.zip"),
    *sorted(str(p) for p in (PYSPARK_HOME / "python" / "lib").glob("py4j-*-src.zip")),
    *sorted(str(p) for p in (PYSPARK_HOME / "jars").glob("spark-core_*.jar")),
]
SITE_PACKAGES = str(PYSPARK_HOME.parent)


def test_spark_archives_are_dropped_when_pyspark_and_py4j_are_installed(tmp_path: Path) -> None:
    assert len(SPARK_ARCHIVES) == 3 and all(Path(p).is_file() for p in SPARK_ARCHIVES), SPARK_ARCHIVES
    users_zip = tmp_path / "deps.zip"
    with zipfile.ZipFile(users_zip, "w") as archive:
        archive.writestr("deps/__init__.py", "")
    path = [str(tmp_path), *SPARK_ARCHIVES, str(users_zip), SITE_PACKAGES]

    assert drop_repeated_archives(path) == SPARK_ARCHIVES
    assert path == [str(tmp_path), str(users_zip), SITE_PACKAGES]


def test_archives_stay_when_they_are_the_only_pyspark(tmp_path: Path) -> None:
    path = [str(tmp_path), *SPARK_ARCHIVES]  # no site-packages: pyspark only importable from the zip

    assert drop_repeated_archives(path) == []
    assert path == [str(tmp_path), *SPARK_ARCHIVES]


def _worker_path(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for _ in batches:
        pass
    yield pa.RecordBatch.from_arrays([pa.array([sys.path])], names=["path"])


def test_the_local_environment_starts_workers_without_the_archives(spark: SparkSession) -> None:
    """The suite's session uses config/environments/local.yaml, which sets the daemon module."""
    assert spark.conf.get("spark.python.daemon.module") == "lakehouse.spark.python_daemon"
    rows = spark.range(4).repartition(2).mapInArrow(_worker_path, "path array<string>").collect()

    assert len(rows) == 2
    for row in rows:
        assert not set(row["path"]) & set(SPARK_ARCHIVES), row["path"]
        assert SITE_PACKAGES in row["path"]
