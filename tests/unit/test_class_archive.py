"""The Spark drivers' class archive (lakehouse.spark.class_archive): named by what the JVM checks, used only when
it exists, never in place of an archive the environment's own Java options name, and alongside the log4j option
of spark-submit launches."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.config.settings import settings
from lakehouse.spark.class_archive import DRIVER_OPTIONS, archive_path, with_archive
from lakehouse.spark.submit import submit_base


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAKEHOUSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _jars(tmp_path: Path) -> dict[str, str]:
    jars = [tmp_path / "delta.jar", tmp_path / "kafka.jar"]
    for jar in jars:
        jar.write_bytes(b"jar")
    return {"spark.jars": ",".join(str(j) for j in jars)}


def test_the_archive_is_named_by_the_jars_the_driver_loads(cache: Path, tmp_path: Path) -> None:
    conf = _jars(tmp_path)
    first = archive_path(conf)
    assert first is not None
    assert first.parent == cache / "class-archives"
    assert archive_path(dict(conf)) == first
    (tmp_path / "kafka.jar").write_bytes(b"another build of the jar")
    assert archive_path(conf) != first
    assert archive_path({**conf, "spark.driver.extraClassPath": str(tmp_path / "delta.jar")}) != archive_path(conf)


def test_a_driver_maps_the_archive_only_once_it_is_built(cache: Path, tmp_path: Path) -> None:
    conf = {**_jars(tmp_path), DRIVER_OPTIONS: "-Dsome.option=1"}
    assert with_archive(conf) == conf
    path = archive_path(conf)
    assert path is not None
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    options = with_archive(conf)[DRIVER_OPTIONS].split()
    assert options[0] == f"-XX:SharedArchiveFile={path}"
    assert options[-1] == "-Dsome.option=1"
    own = {**conf, DRIVER_OPTIONS: "-XX:SharedArchiveFile=/elsewhere.jsa"}
    assert with_archive(own) == own


def test_spark_submit_gets_the_archive_and_the_log4j_configuration(cache: Path) -> None:
    from lakehouse.spark.session import session_conf

    env = settings()
    path = archive_path(session_conf(env))
    assert path is not None
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    argv = submit_base(env, "probe")
    options = argv[argv.index("--driver-java-options") + 1]
    assert "-Dlog4j2.configurationFile=file:" in options
    assert f"-XX:SharedArchiveFile={path}" in options
    assert not any(arg.startswith(f"{DRIVER_OPTIONS}=") for arg in argv)
    for option in env.spark.conf[DRIVER_OPTIONS].split():  # the environment's own options come along
        assert option in options.split()


def test_an_environment_may_name_its_own_log4j_configuration(cache: Path) -> None:
    base = settings()
    own = "-Dlog4j2.configurationFile=file:/etc/spark/log4j2.properties"
    spark = base.spark.model_copy(update={"conf": {**base.spark.conf, DRIVER_OPTIONS: own}})
    env = base.model_copy(update={"spark": spark})
    argv = submit_base(env, "probe")
    options = argv[argv.index("--driver-java-options") + 1].split()
    assert [o for o in options if "log4j2.configurationFile" in o] == [own]


def test_archives_built_from_changed_or_deleted_jars_are_pruned(tmp_path: Path) -> None:
    from lakehouse.spark.class_archive import prune

    jar, gone = tmp_path / "kept.jar", tmp_path / "gone.jar"
    jar.write_bytes(b"jar")
    gone.write_bytes(b"jar")
    folder = tmp_path / "class-archives"
    folder.mkdir()

    def archive(name: str, *jars: Path) -> Path:
        path = folder / f"{name}.jsa"
        path.write_bytes(b"archive")
        stat_lines = [f"{j}:{j.stat().st_size}:{j.stat().st_mtime_ns}" for j in jars]
        path.with_suffix(".inputs").write_text("\n".join(["conf:/nowhere", *stat_lines, f"{tmp_path}/x.jar:absent"]))
        return path

    valid, rebuilt, current = archive("valid", jar), archive("rebuilt", jar), archive("current", gone)
    archive("deleted", gone)
    legacy = folder / "legacy.jsa"
    legacy.write_bytes(b"archive")
    rebuilt.with_suffix(".inputs").write_text(f"{jar}:1:1\n")
    gone.unlink()
    assert sorted(p.name for p in prune(folder, keep=current)) == ["deleted.jsa", "legacy.jsa", "rebuilt.jsa"]
    assert sorted(p.name for p in folder.iterdir()) == ["current.inputs", "current.jsa", "valid.inputs", "valid.jsa"]
    assert valid.is_file()
