"""Orders end to end on the real stack: Kafka -> Bronze -> Silver (spark-submit, available-now) -> the
gold_marts DAG (dag.test) -> PostgreSQL. Expected mart rows are computed here, in plain Python, from the
generated messages and the reference CSV; never by the code under test."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lakehouse.config.settings import Settings
from lakehouse.kafka.generator import INVALID_FAULTS, MALFORMED_FAULTS, GeneratedMessage, GeneratorOptions, generate

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
DAY = date(2025, 3, 10)
DEAD_LETTER_FAULTS = set(MALFORMED_FAULTS)
QUARANTINE_FAULTS = set(INVALID_FAULTS)


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def expected_mart(messages: list[GeneratedMessage], products_csv: Path) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """fct_orders_daily computed independently: clean events, first occurrence of each event_id."""
    categories = {row["product_id"]: row["category"] for row in csv.DictReader(products_csv.open())}
    events: dict[str, dict[str, Any]] = {}
    for message in messages:
        if message.fault is None and message.event is not None:
            events.setdefault(message.event["event_id"], message.event)
    groups: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {
            "placed": set(),
            "cancelled": set(),
            "units": 0,
            "gross": Decimal(0),
            "cancelled_rev": Decimal(0),
            "customers": set(),
        }
    )
    for event in events.values():
        if event["event_type"] not in ("ORDER_PLACED", "ORDER_CANCELLED"):
            continue  # updates change no count: a group of updates only has no row (docs/marts.md)
        day = datetime.fromisoformat(event["event_timestamp"].replace("Z", "+00:00")).astimezone(UTC).date()
        key = (
            event["tenant_id"],
            day,
            event["region"],
            event.get("channel") or "unknown",
            categories.get(event["product_id"], "unknown"),
        )
        group = groups[key]
        price = Decimal(str(event["total_price"]))
        if event["event_type"] == "ORDER_PLACED":
            group["placed"].add(event["order_id"])
            group["units"] += int(event["quantity"])
            group["gross"] += price
            group["customers"].add(event["customer_id"])
        elif event["event_type"] == "ORDER_CANCELLED":
            group["cancelled"].add(event["order_id"])
            group["cancelled_rev"] += price
    return {
        key: (
            len(g["placed"]),
            len(g["cancelled"]),
            g["units"],
            _money(g["gross"]),
            _money(g["cancelled_rev"]),
            _money(g["gross"] / len(g["placed"])) if g["placed"] else Decimal("0.00"),
            len(g["customers"]),
        )
        for key, g in groups.items()
    }


def serving_rows(dsn: str, day: date) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The loaded mart rows of one day, keyed by grain."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tenant_id, order_date, region, channel, product_category, orders_placed, orders_cancelled, "
            "units, gross_revenue, cancelled_revenue, avg_order_value, unique_customers "
            "FROM serving.fct_orders_daily WHERE order_date = %s",
            (day,),
        ).fetchall()
    keyed = {tuple(r[:5]): tuple(r[5:]) for r in rows}
    assert len(keyed) == len(rows), "duplicate grain rows in serving"
    return keyed


def _count(spark: Any, path: str, where: str = "true") -> int:
    return int(spark.read.format("delta").load(path).where(where).count())


def test_orders_from_kafka_to_postgres_through_airflow(
    kafka_stack: Settings,
    airflow_db: Settings,
    isolated_serving: Settings,
    spark: Any,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.spark.submit import run_spark_job

    env = isolated_serving
    options = GeneratorOptions(
        tenants=4,
        seed=7,
        start=datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC),
        days=1,
        v2_fraction=0.5,
        duplicate_fraction=0.1,
        malformed_fraction=0.03,
        invalid_fraction=0.05,
    )
    messages = [m for m in generate("orders", 800, options) if m.fault != "oversized"]
    ensure_topics(env)
    with EventProducer(env) as producer:
        assert producer.send_events("orders", messages, total=len(messages)) == len(messages)

    run_spark_job(env, "lakehouse.spark.jobs.stream", ["--event-type=orders", "--available-now"])

    # every message is accounted for: Bronze = produced; dead letters + quarantine + Silver + duplicates = produced
    fault_of = {m.value: m.fault for m in messages if m.fault != "duplicate"}
    faults = [fault_of.get(m.value, m.fault) if m.fault == "duplicate" else m.fault for m in messages]
    clean_ids = {m.event["event_id"] for m, f in zip(messages, faults, strict=True) if f is None and m.event}
    lake = env.storage
    assert _count(spark, lake.table_path("bronze", "orders")) == len(messages)
    assert _count(spark, lake.table_path("bronze", "_dead_letters")) == sum(f in DEAD_LETTER_FAULTS for f in faults)
    assert _count(spark, lake.table_path("silver", "_quarantine")) == sum(f in QUARANTINE_FAULTS for f in faults)
    assert _count(spark, lake.table_path("silver", "orders")) == len(clean_ids)

    dag = DagBag(dag_folder=str(ROOT / "dags" / "gold_marts.py")).get_dag("gold_marts")
    assert dag is not None
    expected = expected_mart(messages, ROOT / "config" / "reference" / "products" / "2026-01-01.csv")
    expected_day = {k: v for k, v in expected.items() if k[1] == DAY}
    assert expected_day, "the generated data should produce mart rows for the day"

    # the fct_orders_daily task group of the DAG (build -> dq_gate -> load), as the scheduler would run it;
    # every task is its own process, so each Spark step starts its own driver (spark-submit, the default)
    subset = dag.partial_subset(task_ids=[f"fct_orders_daily.{step}" for step in ("build", "dq_gate", "load")])
    assert len(subset.tasks) == 3
    # a manual run covers the schedule interval that ends at its logical date: [DAY, DAY + 1 day)
    run = subset.test(logical_date=datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(days=1))
    assert run.state == "success", f"DAG run ended {run.state}"
    assert serving_rows(env.postgres_dsn(), DAY) == expected_day
    with psycopg.connect(env.postgres_dsn()) as conn:
        freshness = conn.execute(
            "SELECT rows FROM serving.freshness WHERE mart = 'fct_orders_daily' AND interval_start = %s", (DAY,)
        ).fetchone()
        gate = conn.execute(
            "SELECT problems, loaded_at IS NOT NULL FROM lakehouse_meta.gold_checks WHERE mart = 'fct_orders_daily'"
        ).fetchone()
    assert freshness == (len(expected_day),)
    assert gate == ([], True)
