"""Issue-4 behaviour of Gold builds and loads on real Spark/Delta and PostgreSQL:

* daily incremental runs, with late rows arriving between them, equal one full rebuild, row for row;
* a failed DQ gate loads nothing and keeps the previous serving rows;
* an interval without Silver data loads nothing and does not fail.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from lakehouse.config.marts import mart
from lakehouse.config.settings import Settings

pytestmark = pytest.mark.integration
D1 = date(2023, 2, 1)
COLUMNS = (
    "event_id string, event_type string, tenant_id string, event_timestamp timestamp, event_date date, "
    "order_id string, customer_id string, product_id string, quantity bigint, total_price decimal(14,2), "
    "region string, channel string, coupon_code string, _ingested_at timestamp"
)


def _orders(day: date, count: int, ingested: datetime, tag: str) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(count):
        ts = datetime(day.year, day.month, day.day, 8 + i % 10, i % 60)
        rows.append(
            (
                f"{tag}-{i}",
                "ORDER_CANCELLED" if i % 7 == 0 else "ORDER_PLACED",
                f"tenant_0{i % 2 + 1}",
                ts,
                day,
                f"{tag}-o{i // 2}",
                f"c{i % 5}",
                f"P000{i % 3 + 1}",
                i % 4 + 1,
                Decimal(f"{10 + i}.25"),
                ["north", "south"][i % 2],
                ["web", None][i % 2],
                ["SPRING10", None, None][i % 3],
                ingested,
            )
        )
    return rows


def _serving(dsn: str, start: date, end: date) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT * FROM serving.fct_orders_daily WHERE order_date >= %s AND order_date < %s ORDER BY 1, 2, 3, 4, 5",
            (start, end),
        ).fetchall()


def test_daily_incremental_runs_with_late_data_equal_a_full_rebuild(isolated_serving: Settings, spark: Any) -> None:
    from lakehouse.spark.io import reference
    from lakehouse.spark.jobs.gold import build_and_check, load
    from lakehouse.spark.transforms.gold import fct_orders_daily

    env, dsn = isolated_serving, isolated_serving.postgres_dsn()
    spec = mart("fct_orders_daily")
    silver_path = env.storage.table_path("silver", "orders")

    def arrive(rows: list[tuple[Any, ...]]) -> None:
        spark.createDataFrame(rows, COLUMNS).write.format("delta").mode("append").partitionBy(
            "tenant_id", "event_date"
        ).save(silver_path)

    days = [D1 + timedelta(days=i) for i in range(3)]
    arrive(_orders(days[0], 30, datetime(2023, 2, 2, 1), "a"))
    for index, day in enumerate(days):
        if index == 1:
            arrive(_orders(days[1], 25, datetime(2023, 2, 3, 1), "b"))
            arrive(_orders(days[0], 9, datetime(2023, 2, 3, 2), "late1"))  # late for day 0
        if index == 2:
            arrive(_orders(days[2], 20, datetime(2023, 2, 4, 1), "c"))
            arrive(_orders(days[1], 7, datetime(2023, 2, 4, 2), "late2"))  # late for day 1
            arrive(_orders(days[0], 3, datetime(2023, 2, 4, 3), "late3"))  # late for day 0, again
        result = build_and_check(spark, env, spec, day, day + timedelta(days=1), dsn)
        assert result.passed, result.problems
        if index == 2:
            assert result.built_dates == days, "the late days must be rebuilt with the interval"
        load(spark, env, spec, day, day + timedelta(days=1), dsn)

    silver = spark.read.format("delta").load(silver_path)
    full = fct_orders_daily(silver, reference.current(spark, env, "products")).orderBy(
        "tenant_id", "order_date", "region", "channel", "product_category"
    )
    expected = [tuple(r) for r in full.collect()]
    assert _serving(dsn, days[0], days[-1] + timedelta(days=1)) == expected
    gold = spark.read.format("delta").load(env.storage.table_path("gold", "fct_orders_daily"))
    assert sorted(tuple(r) for r in gold.collect()) == sorted(expected)


def test_failed_gate_loads_nothing_and_empty_interval_loads_nothing(isolated_serving: Settings, spark: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from lakehouse.orchestration.airflow_tasks import run_dq_gate
    from lakehouse.postgres.errors import DataQualityError
    from lakehouse.spark.jobs.gold import build_and_check, load

    env, dsn = isolated_serving, isolated_serving.postgres_dsn()
    spec = mart("fct_orders_daily")
    day = date(2023, 3, 1)
    next_day = day + timedelta(days=1)
    spark.createDataFrame(_orders(day, 12, datetime(2023, 3, 2), "g"), COLUMNS).write.format("delta").partitionBy(
        "tenant_id", "event_date"
    ).save(env.storage.table_path("silver", "orders"))
    assert build_and_check(spark, env, spec, day, next_day, dsn).passed
    load(spark, env, spec, day, next_day, dsn)
    before = _serving(dsn, day, next_day)
    assert before

    # break Gold behind the build's back: a duplicated key makes the gate fail on the next build's check
    gold_path = env.storage.table_path("gold", "fct_orders_daily")
    from lakehouse.spark.jobs import gold as gold_job

    problems, _, _ = gold_job.check(spark, env, spec, day, next_day)
    assert problems == []
    spark.read.format("delta").load(gold_path).limit(1).write.format("delta").mode("append").save(gold_path)
    problems, _, _ = gold_job.check(spark, env, spec, day, next_day)
    assert any("duplicate key" in p for p in problems)
    # a channel outside the contract's accepted values fails its column test
    spark.read.format("delta").load(gold_path).limit(1).selectExpr(
        *[("'fax' AS channel" if c == "channel" else c) for c in spec.column_names]
    ).write.format("delta").mode("append").save(gold_path)
    channel_problems, _, _ = gold_job.check(spark, env, spec, day, next_day)
    assert f"{spec.name}: column test accepted_values(channel) fails for 1 row(s)" in channel_problems
    from lakehouse.postgres import gold_checks

    recorded = gold_checks.latest(dsn, spec.name, day, next_day)
    assert recorded is not None
    gold_checks.record(dsn, gold_checks.GoldCheck(**{**recorded.__dict__, "problems": problems}))
    with pytest.raises(AirflowFailException, match="duplicate key") as gate_failure:
        run_dq_gate(spec.name, datetime(2023, 3, 1), datetime(2023, 3, 2))
    # the DAG's on_failure_callback writes the alert the runbook tells operators to read
    from types import SimpleNamespace

    from lakehouse.orchestration.airflow_tasks import record_failure

    task = SimpleNamespace(dag_id="gold_marts", task_id="fct_orders_daily.dq_gate")
    record_failure({"task_instance": task, "run_id": "manual__2023-03-01", "exception": gate_failure.value})
    with psycopg.connect(dsn) as conn:
        alerts = conn.execute("SELECT dag_id, task_id, run_id, mart, reason FROM serving.load_alerts").fetchall()
    assert [a[:4] for a in alerts] == [("gold_marts", "fct_orders_daily.dq_gate", "manual__2023-03-01", spec.name)]
    assert alerts[0][4].startswith("AirflowFailException: DQ gate failed") and "duplicate key" in alerts[0][4]
    with pytest.raises(DataQualityError):
        load(spark, env, spec, day, next_day, dsn)
    assert _serving(dsn, day, next_day) == before, "serving keeps the previous rows"

    # no Silver data at all for an interval: nothing to load, no failure
    empty_day = date(2023, 3, 20)
    result = build_and_check(spark, env, spec, empty_day, empty_day + timedelta(days=1), dsn)
    assert result.passed and result.gold_rows == 0
    assert load(spark, env, spec, empty_day, empty_day + timedelta(days=1), dsn) == 0
