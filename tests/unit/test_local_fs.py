"""Which Spark JVMs get the java.nio local file system (lakehouse.spark.local_fs): those whose driver and
executors run on this machine, never a remote cluster's, and never in place of a file system the environment
names itself."""

from __future__ import annotations

import logging
import os

import pytest

from lakehouse.config.settings import load_settings
from lakehouse.spark.local_fs import HADOOP_CONF, ensure_jar, with_local_fs
from lakehouse.spark.session import session_conf

DRIVER, EXECUTOR = "spark.driver.extraClassPath", "spark.executor.extraClassPath"


def _conf(master: str) -> dict[str, str]:
    return session_conf(load_settings("local", environ={**os.environ, "LAKEHOUSE_SPARK_MASTER": master}))


def test_a_local_master_runs_its_executors_in_the_driver_with_the_jar() -> None:
    jar = ensure_jar()
    assert jar is not None and jar.is_file()
    conf = _conf("local[2]")
    assert {key: conf[key] for key in HADOOP_CONF} == HADOOP_CONF
    assert conf[DRIVER].split(os.pathsep)[0] == str(jar)
    assert EXECUTOR not in conf


def test_a_master_on_this_machine_gives_its_executors_the_jar_too() -> None:
    conf = _conf("spark://127.0.0.1:7077")
    assert {key: conf[key] for key in HADOOP_CONF} == HADOOP_CONF
    assert str(ensure_jar()) in conf[DRIVER].split(os.pathsep)
    assert str(ensure_jar()) in conf[EXECUTOR].split(os.pathsep)


def test_a_remote_cluster_keeps_hadoops_own_file_system() -> None:
    conf = _conf("spark://spark-master.internal:7077")
    assert not set(HADOOP_CONF) & set(conf)
    assert "local-fs" not in conf.get(DRIVER, "") + conf.get(EXECUTOR, "")


def test_it_can_be_turned_off_and_never_replaces_the_environments_own(monkeypatch: pytest.MonkeyPatch) -> None:
    own = {"spark.hadoop.fs.file.impl": "com.example.LocalFs", DRIVER: "/opt/example.jar"}
    assert with_local_fs(dict(own), local_executors=True) == own
    monkeypatch.setenv("LAKEHOUSE_LOCAL_FS", "hadoop")
    conf = _conf("local[2]")
    assert not set(HADOOP_CONF) & set(conf)


@pytest.mark.usefixtures("without_javac")
def test_without_javac_it_is_one_warning_and_hadoops_own(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lakehouse.spark.local_fs"):
        assert ensure_jar() is None
        assert with_local_fs({}, local_executors=False) == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "`javac` was not found" in warnings[0] and "JDK" in warnings[0]
