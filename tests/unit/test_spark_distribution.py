"""pyspark's Spark distribution placed in the cache (lakehouse.spark.distribution): the same folder, files and
modification times for every venv with the same pyspark build, so that the drivers' class archive outlives a fresh
checkout; SPARK_HOME still wins, and without ``lakehouse setup`` the venv's distribution is used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakehouse.config.settings import settings
from lakehouse.spark.class_archive import _fingerprint
from lakehouse.spark.distribution import (
    COMPLETE,
    distribution_folder,
    ensure_distribution,
    pyspark_home,
    spark_home,
)
from lakehouse.spark.submit import submit_base, submit_env


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAKEHOUSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SPARK_HOME", raising=False)
    return tmp_path / "cache"


def test_without_setup_the_venv_distribution_is_used(cache: Path) -> None:
    assert not distribution_folder().exists()
    assert spark_home() == pyspark_home()


def test_the_cached_distribution_holds_the_venvs_files_and_is_made_once(cache: Path) -> None:
    folder = ensure_distribution()
    assert folder.parent == cache / "spark-home" and (folder / COMPLETE).is_file()
    assert spark_home() == folder
    source = pyspark_home()
    jars = sorted(p.name for p in (source / "jars").glob("*.jar"))
    assert jars and sorted(p.name for p in (folder / "jars").glob("*.jar")) == jars
    for name in jars[:20]:
        original, placed = (source / "jars" / name).stat(), (folder / "jars" / name).stat()
        assert (placed.st_size, placed.st_mtime_ns) == (original.st_size, original.st_mtime_ns)
    for script in ("bin/spark-submit", "bin/spark-class"):
        assert os.access(folder / script, os.X_OK), script
    assert (folder / "bin" / "load-spark-env.sh").is_file()
    assert (folder / "python" / "lib" / "pyspark.zip").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in (folder / "jars").iterdir()}
    assert ensure_distribution() == folder
    assert {p: p.stat().st_mtime_ns for p in (folder / "jars").iterdir()} == stamps


def test_the_archive_and_every_launch_name_the_cached_distribution(cache: Path) -> None:
    folder = ensure_distribution()
    lines = _fingerprint({}) or []
    assert any(line.startswith(f"{folder}/jars/") for line in lines)
    assert not any(line.startswith(f"{pyspark_home()}/") for line in lines), "no path inside the venv"
    assert submit_base(settings(), "probe")[0] == str(folder / "bin" / "spark-submit")
    assert submit_env(settings())["SPARK_HOME"] == str(folder)


def test_spark_home_set_by_the_user_wins(cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ensure_distribution()
    monkeypatch.setenv("SPARK_HOME", str(tmp_path / "spark-3"))
    assert spark_home() == tmp_path / "spark-3"
