"""
### Bronze and Silver on a schedule (available-now)

For users who do not keep the streaming job running: every 30 minutes this DAG runs it with `--available-now`
(one query per event type, writing Bronze and Silver from the same micro-batch), which processes everything that
arrived since the last run (tracked by the streaming checkpoints) and exits. Exactly-once holds across runs:
checkpoints plus idempotent Delta writes.

Do not run it while `lakehouse stream` runs continuously on the same checkpoints.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, task

from lakehouse.config.specs import load_event_types
from lakehouse.orchestration.airflow_tasks import record_failure, run_streams_available_now

with DAG(
    dag_id="streams_available_now",
    description="Kafka -> Bronze -> Silver, processing what is available, every 30 minutes",
    schedule=timedelta(minutes=30),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "on_failure_callback": record_failure,
    },
    tags=["lakehouse", "bronze", "silver", "streaming"],
    doc_md=__doc__,
) as dag:
    event_types = sorted(load_event_types())

    @task(
        task_id="stream",
        outlets=[Asset(f"lakehouse://{layer}/{name}") for layer in ("bronze", "silver") for name in event_types],
    )
    def stream() -> None:
        """Kafka -> Bronze and Silver for every event type, until caught up."""
        run_streams_available_now()

    stream()
