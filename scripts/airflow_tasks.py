"""What the Airflow DAGs call. DAG files only wire these together; all logic and heavy imports live here."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from lakehouse.config.settings import settings

log = logging.getLogger(__name__)
SERVING_CONN_ID = "lakehouse_postgres"
GOLD_JOB = "lakehouse.spark.jobs.gold"


def serving_dsn() -> str:
    """The serving DSN from the Airflow connection ``lakehouse_postgres`` if defined, else the environment."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(SERVING_CONN_ID)
    except AirflowNotFoundException:
        return settings().postgres_dsn()
    uri = connection.get_uri()
    return uri.replace("postgres://", "postgresql://", 1)


def _day(value: datetime | date) -> str:
    return (value.date() if isinstance(value, datetime) else value).isoformat()


def run_gold_step(action: str, mart: str, data_interval_start: datetime, data_interval_end: datetime) -> None:
    """Run build/check/load of one mart for the task's data interval with spark-submit.

    A failure caused by data or configuration (exit code 2, e.g. the DQ gate) fails the task without retries;
    anything else is raised for Airflow to retry.
    """
    import os

    from airflow.sdk.exceptions import AirflowFailException

    from lakehouse.spark.submit import SparkSubmitError, run_spark_job

    args = [action, mart, f"--start={_day(data_interval_start)}", f"--end={_day(data_interval_end)}"]
    if action == "load":
        os.environ["LAKEHOUSE_SERVING_DSN"] = serving_dsn()
        args.append("--dsn-env=LAKEHOUSE_SERVING_DSN")
    try:
        run_spark_job(settings(), GOLD_JOB, args)
    except SparkSubmitError as exc:
        if exc.user_error:
            raise AirflowFailException(str(exc)) from exc
        raise


def run_streams_available_now(layer: str) -> None:
    """Run the Bronze or Silver job in available-now mode (process what is there, then exit)."""
    from lakehouse.spark.submit import run_spark_job

    run_spark_job(settings(), f"lakehouse.spark.jobs.{layer}", ["--available-now"])


def record_failure(context: dict[str, Any]) -> None:
    """on_failure_callback: write an alert row with the task, run and reason into serving.load_alerts."""
    from lakehouse.postgres.alerts import record_alert

    ti = context.get("task_instance") or context.get("ti")
    exception = context.get("exception")
    task_id = getattr(ti, "task_id", "?")
    mart = task_id.split(".", 1)[0] if "." in task_id else None
    record_alert(
        serving_dsn(),
        getattr(ti, "dag_id", "?"),
        task_id,
        str(context.get("run_id", "?")),
        mart,
        f"{type(exception).__name__}: {exception}" if exception else "task failed",
    )
