"""
### Bronze, Silver and the real-time revenue mart on a schedule (available-now)

For users who do not keep the streaming jobs running: every 30 minutes this DAG runs them with `--available-now`,
which processes everything that arrived since the last run (tracked by the streaming checkpoints) and exits:

* **stream**: one query per event type, writing Bronze and Silver from the same micro-batch;
* **revenue_5min**, after it: the streaming Gold query of `order_revenue_5min` (Silver orders in 5-minute
  event-time windows, 10-minute watermark), MERGEd into its Gold table and upserted into
  `serving.order_revenue_5min`. The `gold_marts` DAG's daily build of the mart stays the correction for orders
  later than the watermark.

Exactly-once holds across runs: checkpoints plus idempotent writes (Delta transaction ids, MERGE and upsert of
absolute values).

Do not run it while `lakehouse stream` or `lakehouse stream-revenue` runs continuously on the same checkpoints.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, task

from lakehouse.config.specs import load_event_types
from lakehouse.orchestration.airflow_tasks import (
    run_revenue_stream_available_now,
    run_streams_available_now,
    task_defaults,
)

with DAG(
    dag_id="streams_available_now",
    description="Kafka -> Bronze -> Silver -> real-time revenue, processing what is available, every 30 minutes",
    schedule=timedelta(minutes=30),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(),
    tags=["lakehouse", "bronze", "silver", "gold", "streaming"],
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

    @task(
        task_id="revenue_5min",
        inlets=[Asset("lakehouse://silver/orders")],
        outlets=[Asset("lakehouse://gold/order_revenue_5min"), Asset("lakehouse://serving/order_revenue_5min")],
    )
    def revenue_5min() -> None:
        """Silver orders -> order_revenue_5min windows in Gold and serving, until caught up."""
        run_revenue_stream_available_now()

    stream() >> revenue_5min()
