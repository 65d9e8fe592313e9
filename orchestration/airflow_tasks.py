"""What the Airflow DAGs call. DAG files only wire these together; all logic and heavy imports live here."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from lakehouse.config import log_masking
from lakehouse.config.settings import settings

log = logging.getLogger(__name__)
# every DAG imports this module, in the dag-processor and in each task's process: their log lines are masked from here
log_masking.install()
SERVING_CONN_ID = "lakehouse_postgres"
GOLD_JOB = "lakehouse.spark.jobs.gold"
SENTIMENT_JOB = "lakehouse.spark.jobs.sentiment"


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
    """Run ``build`` (which also evaluates the DQ gate) or ``load`` of one mart for the task's data interval, the
    way the environment deploys Spark (spark-submit, Spark Connect or in-process). A failure caused by data or
    configuration fails the task without retries; anything else is raised for Airflow to retry."""
    import os

    os.environ["LAKEHOUSE_SERVING_DSN"] = serving_dsn()
    args = [
        action,
        mart,
        f"--start={_day(data_interval_start)}",
        f"--end={_day(data_interval_end)}",
        "--dsn-env=LAKEHOUSE_SERVING_DSN",
    ]
    _run(GOLD_JOB, args, streaming=False)


def run_dq_gate(mart: str, data_interval_start: datetime, data_interval_end: datetime) -> None:
    """The gate between build and load: read the checks the build recorded (no Spark needed) and fail the task,
    without retries, when any failed or none were recorded. Serving keeps its previous data."""
    from airflow.sdk.exceptions import AirflowFailException

    from lakehouse.postgres import gold_checks

    start, end = date.fromisoformat(_day(data_interval_start)), date.fromisoformat(_day(data_interval_end))
    check = gold_checks.latest(serving_dsn(), mart, start, end)
    if check is None:
        raise AirflowFailException(f"no DQ result recorded for {mart} {start}..{end}: run its build task first")
    if not check.passed:
        raise AirflowFailException(
            f"DQ gate failed for {mart} {start}..{end}, nothing loaded: " + "; ".join(check.problems)
        )
    log.info(
        "DQ gate passed for %s %s..%s: %d Gold rows from %d Silver rows, dates %s",
        mart,
        start,
        end,
        check.gold_rows,
        check.silver_rows,
        ", ".join(d.isoformat() for d in check.built_dates),
    )


def run_streams_available_now() -> None:
    """Run the streaming job in available-now mode (process what is there, then exit)."""
    _run("lakehouse.spark.jobs.stream", ["--available-now"], streaming=True)


def run_revenue_stream_available_now() -> None:
    """Run the streaming Gold query of order_revenue_5min in available-now mode (the Silver orders that arrived
    since its last run, then exit)."""
    import os

    os.environ["LAKEHOUSE_SERVING_DSN"] = serving_dsn()
    _run("lakehouse.spark.jobs.revenue_stream", ["--available-now", "--dsn-env=LAKEHOUSE_SERVING_DSN"], streaming=True)


def sentiment_run_key(dag_run: Any) -> str:
    """The run key of a DAG run's sentiment training: ``<dag id>/<run id>``, the same on every retry, so the train
    task finds its own finished run and the gate the candidate that run registered."""
    return f"{dag_run.dag_id}/{dag_run.run_id}"


def sentiment_end(dag_run: Any) -> date:
    """The day the training set ends before: the end of the run's data interval, or for a manual run without one,
    the day it was triggered (its ``run_after``, the same on every retry)."""
    end = dag_run.data_interval_end or dag_run.run_after
    return date.fromisoformat(_day(end))


def run_sentiment_training_set(dag_run: Any) -> None:
    """Rebuild the Gold training set from the Silver reviews of the days before the run's end."""
    _run(SENTIMENT_JOB, ["training-set", f"--end={sentiment_end(dag_run).isoformat()}"], streaming=False)


def run_sentiment_train(dag_run: Any) -> None:
    """Train a candidate on the training set and register it in MLflow (no alias); a retry after a finished
    training run reuses it."""
    _run(SENTIMENT_JOB, ["train", f"--run-key={sentiment_run_key(dag_run)}"], streaming=False)


def run_sentiment_gate(dag_run: Any) -> None:
    """The promotion gate on the run's candidate: record the decision in serving.ml_model_decisions and move the
    champion alias only when the candidate beats the champion and the baseline by their margins."""
    import os

    os.environ["LAKEHOUSE_SERVING_DSN"] = serving_dsn()
    args = ["gate", f"--run-key={sentiment_run_key(dag_run)}", "--dsn-env=LAKEHOUSE_SERVING_DSN"]
    _run(SENTIMENT_JOB, args, streaming=False)


def run_sentiment_drift(data_interval_start: datetime) -> None:
    """The drift of the day's scores (the run's data interval: one day) against each scoring version's training
    set, into serving.ml_score_drift, with an alert in serving.ml_alerts over the threshold."""
    import os

    os.environ["LAKEHOUSE_SERVING_DSN"] = serving_dsn()
    args = ["drift", f"--day={_day(data_interval_start)}", "--dsn-env=LAKEHOUSE_SERVING_DSN"]
    _run(SENTIMENT_JOB, args, streaming=False)


def _run(module: str, args: list[str], *, streaming: bool) -> None:
    """Run a Spark job; errors that a retry cannot fix (bad data, input or config) fail without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from lakehouse.config.errors import LakehouseError, ServiceUnavailableError
    from lakehouse.spark.submit import SparkSubmitError, run_job

    try:
        run_job(settings(), module, args, streaming=streaming)
    except SparkSubmitError as exc:
        if exc.user_error:
            raise AirflowFailException(str(exc)) from exc
        raise
    except ServiceUnavailableError:  # Spark Connect, PostgreSQL, Kafka or the store unreachable: Airflow retries
        raise
    except LakehouseError as exc:
        raise AirflowFailException(str(exc)) from exc


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


def task_defaults(**overrides: Any) -> dict[str, Any]:
    """Every lakehouse DAG's ``default_args``: two retries with exponential backoff from a minute, and failures
    recorded in serving.load_alerts (``record_failure``); ``overrides`` add or replace keys."""
    return {
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "on_failure_callback": record_failure,
        **overrides,
    }
