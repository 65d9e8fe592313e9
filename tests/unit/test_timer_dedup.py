"""Which Spark sessions get the timer dedup (lakehouse.spark.timer_dedup): every one whose jars this project ships
(local, a cluster, the Spark Connect server), never Databricks', and none when turned off."""

from __future__ import annotations

import logging
import os
import zipfile

import pytest

from lakehouse.config.settings import load_settings
from lakehouse.spark.session import session_conf
from lakehouse.spark.timer_dedup import EXTENSION, ensure_jar, with_timer_dedup
from tests.unit.test_config import DATABRICKS_ENVIRONMENT

DELTA = "io.delta.sql.DeltaSparkSessionExtension"


def _conf(environment: str, **environ: str) -> dict[str, str]:
    return session_conf(load_settings(environment, environ={**os.environ, **environ}))


def test_the_jar_holds_the_extension_and_its_processor() -> None:
    jar = ensure_jar()
    assert jar is not None and jar.is_file()
    with zipfile.ZipFile(jar) as archive:
        names = set(archive.namelist())
    assert {f"lakehouse/dedup/{name}.class" for name in ("TimerDedupExtension", "TimerDedupRule")} <= names
    assert "lakehouse/dedup/FirstWithinWatermark.class" in names


@pytest.mark.parametrize(
    ("environment", "master"), [("local", "local[2]"), ("cluster", "spark://127.0.0.1:7077"), ("local", "yarn")]
)
def test_sessions_with_this_projects_jars_load_it_after_delta(environment: str, master: str) -> None:
    conf = _conf(environment, LAKEHOUSE_SPARK_MASTER=master)
    assert conf["spark.sql.extensions"].split(",") == [DELTA, EXTENSION]
    assert str(ensure_jar()) in conf["spark.jars"].split(",")


def test_databricks_keeps_sparks_operator() -> None:
    conf = session_conf(load_settings("databricks", environ=DATABRICKS_ENVIRONMENT))
    assert EXTENSION not in conf.get("spark.sql.extensions", "")
    assert "timer-dedup" not in conf.get("spark.jars", "")


def test_it_can_be_turned_off_and_is_added_once(monkeypatch: pytest.MonkeyPatch) -> None:
    twice = with_timer_dedup(with_timer_dedup({"spark.sql.extensions": DELTA, "spark.jars": "/a.jar"}))
    assert twice["spark.sql.extensions"] == f"{DELTA},{EXTENSION}"
    assert twice["spark.jars"] == f"/a.jar,{ensure_jar()}"
    monkeypatch.setenv("LAKEHOUSE_DEDUP", "spark")
    assert with_timer_dedup({"spark.sql.extensions": DELTA}) == {"spark.sql.extensions": DELTA}


@pytest.mark.usefixtures("without_javac")
def test_without_javac_it_is_one_warning_and_sparks_operator(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lakehouse.spark.timer_dedup"):
        assert ensure_jar() is None
        assert with_timer_dedup({}) == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "`javac` was not found" in warnings[0] and "Spark's own operator" in warnings[0]
