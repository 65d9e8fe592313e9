"""The streams_available_now DAG end to end: Kafka -> Bronze and Silver, then the real-time revenue windows in Gold
and PostgreSQL, through Airflow (dag.test), twice; the second run finds nothing new and changes nothing
(checkpoints + idempotent writes)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lakehouse.config.settings import Settings
from lakehouse.kafka.generator import GeneratorOptions, generate

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]


def test_streams_dag_lands_every_event_type_once(
    kafka_stack: Settings, airflow_db: Settings, isolated_serving: Settings, spark: Any
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer

    env = isolated_serving
    ensure_topics(env)
    produced = {
        name: list(generate(name, 150, GeneratorOptions(seed=3)))
        for name in ("orders", "customer_events", "device_metrics")
    }
    with EventProducer(env) as producer:
        for name, messages in produced.items():
            producer.send_events(name, messages)

    # the revenue task's windows: each placed order counted once, in one window
    placed = {
        m.event["order_id"]: m.event for m in produced["orders"] if m.event and m.event["event_type"] == "ORDER_PLACED"
    }
    revenue = (len(placed), sum(Decimal(str(e["total_price"])) for e in placed.values()))
    dag = DagBag(dag_folder=str(ROOT / "dags" / "streams_available_now.py")).get_dag("streams_available_now")
    assert dag is not None
    for attempt in range(2):
        run = dag.test(logical_date=datetime(2026, 11, 20, 12, attempt, tzinfo=UTC))
        assert run.state == "success", f"attempt {attempt}: {run.state}"
        for name, messages in produced.items():
            bronze = spark.read.format("delta").load(env.storage.table_path("bronze", name))
            silver = spark.read.format("delta").load(env.storage.table_path("silver", name))
            assert bronze.count() == len(messages), name
            assert silver.count() == len({m.event["event_id"] for m in messages if m.event}), name
        with psycopg.connect(env.postgres_dsn()) as conn:
            totals = conn.execute("SELECT sum(orders_placed), sum(total_revenue) FROM serving.order_revenue_5min")
            assert totals.fetchone() == revenue
        gold = spark.read.format("delta").load(env.storage.table_path("gold", "order_revenue_5min"))
        assert tuple(gold.selectExpr("sum(orders_placed)", "sum(total_revenue)").first()) == revenue
