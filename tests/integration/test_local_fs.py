"""The java.nio local file system (spark/java/lakehouse/hadoop) against Hadoop's own, in the suite's Spark driver:
the same permissions and link statuses, through FileSystem and FileContext, and Delta writes with Hadoop's
default modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from lakehouse.spark.local_fs import ABSTRACT_FILE_SYSTEM, FILE_SYSTEM

# what the suite's JVM is asked for: the driver of a local[2] master, where the executors run too
MODES = (0o000, 0o400, 0o600, 0o640, 0o644, 0o700, 0o750, 0o755, 0o777, 0o1777)


@pytest.fixture(scope="module")
def hadoop(spark: Any) -> Any:
    return spark.sparkContext._jvm.org.apache.hadoop


@pytest.fixture(scope="module")
def file_systems(spark: Any, hadoop: Any) -> tuple[Any, Any]:
    """The file system Spark's Hadoop configuration gives for file:, and Hadoop's own raw one beside it."""
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    uri = spark.sparkContext._jvm.java.net.URI("file:///")
    ours = hadoop.fs.FileSystem.get(uri, conf)
    theirs = hadoop.fs.RawLocalFileSystem()
    theirs.initialize(uri, conf)
    return ours, theirs


def test_spark_reads_and_writes_local_files_through_the_nio_classes(spark: Any, hadoop: Any) -> None:
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    uri = spark.sparkContext._jvm.java.net.URI("file:///")
    assert hadoop.fs.FileSystem.get(uri, conf).getClass().getName() == FILE_SYSTEM
    assert hadoop.fs.AbstractFileSystem.get(uri, conf).getClass().getName() == ABSTRACT_FILE_SYSTEM


def test_permissions_are_set_as_hadoops_own_sets_them(
    hadoop: Any, file_systems: tuple[Any, Any], tmp_path: Path
) -> None:
    ours, theirs = file_systems
    for mode in MODES:
        for name, fs in (("ours", ours), ("theirs", theirs)):
            target = tmp_path / f"{name}-{mode:o}"
            target.write_text("x")
            fs.setPermission(hadoop.fs.Path(str(target)), hadoop.fs.permission.FsPermission(mode))
        ours_mode = stat.S_IMODE((tmp_path / f"ours-{mode:o}").stat().st_mode)
        theirs_mode = stat.S_IMODE((tmp_path / f"theirs-{mode:o}").stat().st_mode)
        assert (ours_mode, theirs_mode) == (mode, mode), f"mode {mode:o}"


def test_link_statuses_are_hadoops_own(hadoop: Any, file_systems: tuple[Any, Any], tmp_path: Path) -> None:
    ours, theirs = file_systems
    (tmp_path / "file").write_text("twelve bytes")
    (tmp_path / "folder").mkdir()
    os.symlink(tmp_path / "file", tmp_path / "link")
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    for name, is_link, is_dir, length in (
        ("file", False, False, 12),
        ("folder", False, True, None),
        ("link", True, False, None),
        ("dangling", True, False, None),
    ):
        path = hadoop.fs.Path(str(tmp_path / name))
        statuses = [fs.getFileLinkStatus(path) for fs in (ours, theirs)]
        for status in statuses:
            assert (status.isSymlink(), status.isDirectory()) == (is_link, is_dir), name
            if length is not None:
                assert status.getLen() == length
        if is_link:
            assert statuses[0].getSymlink().toString() == statuses[1].getSymlink().toString()
    with pytest.raises(Exception, match="FileNotFoundException"):
        ours.getFileLinkStatus(hadoop.fs.Path(str(tmp_path / "absent")))


def test_file_context_renames_and_delta_writes_keep_hadoops_default_modes(
    spark: Any, hadoop: Any, tmp_path: Path
) -> None:
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    context = hadoop.fs.FileContext.getFileContext(conf)
    (tmp_path / "a").write_text("a")
    rename_options = spark.sparkContext._gateway.new_array(hadoop.fs.Options.Rename, 0)
    context.rename(hadoop.fs.Path(f"file://{tmp_path}/a"), hadoop.fs.Path(f"file://{tmp_path}/b"), rename_options)
    assert not (tmp_path / "a").exists() and (tmp_path / "b").read_text() == "a"

    table = tmp_path / "table"
    spark.range(10).selectExpr("id", "id % 2 AS part").write.format("delta").partitionBy("part").save(str(table))
    assert spark.read.format("delta").load(str(table)).count() == 10
    data = sorted(table.rglob("*.parquet"))
    folders = [table / "part=0", table / "part=1"]
    assert len(data) >= 2
    # Hadoop's defaults: 0666 for files and 0777 for folders, less its default umask 022
    assert {stat.S_IMODE(p.stat().st_mode) for p in data} == {0o644}
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o755}
