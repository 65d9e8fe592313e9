"""A job run in this process (``spark.submit.run_job``) with ``spark.deploy: connect`` ends only the Spark Connect
session it opened: a session the caller already had, here the suite's classic one, is the caller's to stop."""

from __future__ import annotations

import os
from typing import Any

from lakehouse.config.settings import load_settings

ROWS_SEEN: list[int] = []


def main(args: list[str]) -> None:
    """The job: counts rows on whatever session ``get_spark`` gives it."""
    from lakehouse.spark.session import get_spark

    ROWS_SEEN.append(get_spark("session-test-job").range(int(args[0])).count())


def test_a_job_run_in_process_leaves_the_callers_session_running(spark: Any) -> None:
    from lakehouse.spark.submit import run_job

    connect = load_settings("local", {**os.environ, "LAKEHOUSE_SPARK_DEPLOY": "connect"})
    assert connect.spark.deploy == "connect"
    run_job(connect, __name__, ["7"])
    assert ROWS_SEEN == [7], "the job ran on the caller's session"
    assert spark.range(5).count() == 5, "the caller's session was stopped"
