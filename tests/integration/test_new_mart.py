"""A newcomer adds a mart: its contract (YAML), one transform and one migration, nothing else; then the Gold job
builds it, runs its DQ gate (with the contract's column tests) and loads it into PostgreSQL.

Everything lives in the test's temporary folders: a copy of config/ (``isolated_lake``), a transform module on
``sys.path`` that the contract names, and a copy of postgres/ddl plus the new migration, applied to the test's
own serving database (``isolated_serving``). The expected rows are counted by hand from tests/silver_samples.py.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lakehouse.config.marts import load_marts
from lakehouse.config.settings import Settings
from lakehouse.postgres.migrate import DDL_DIR, migrate
from lakehouse.spark.jobs import gold as gold_job
from lakehouse.spark.marts import compute
from tests.silver_samples import write_silver

pytestmark = pytest.mark.integration

CONTRACT = """
name: orders_by_status_daily
description: Order events per tenant, day and event type, with their total price.
transform: newcomer_marts:orders_by_status_daily
inputs:
  silver: [orders]
grain: [tenant_id, event_date, event_type]
date_column: event_date
serving_table: orders_by_status_daily
columns:
  - {name: tenant_id, type: string, description: Tenant., tests: [not_null]}
  - {name: event_date, type: date, description: Day of the events (UTC)., tests: [not_null]}
  - name: event_type
    type: string
    description: Order event type.
    tests: [not_null, {accepted_values: [ORDER_PLACED, ORDER_CANCELLED, ORDER_UPDATED]}]
  - {name: events, type: bigint, description: Number of events.}
  - {name: total_price, type: "decimal(18,2)", description: Sum of the events' total price.}
checks:
  reconcile: {gold: sum(events), silver_source: orders, silver: count(*)}
unit_tests:
  - name: counts_by_type
    given:
      orders:
        - {tenant_id: t1, event_date: 2024-05-01, event_type: ORDER_PLACED, total_price: 2.50}
        - {tenant_id: t1, event_date: 2024-05-01, event_type: ORDER_PLACED, total_price: 1.25}
        - {tenant_id: t1, event_date: 2024-05-01, event_type: ORDER_CANCELLED, total_price: 2.50}
    expect:
      - {tenant_id: t1, event_date: 2024-05-01, event_type: ORDER_PLACED, events: 2, total_price: 3.75}
      - {tenant_id: t1, event_date: 2024-05-01, event_type: ORDER_CANCELLED, events: 1, total_price: 2.50}
"""

TRANSFORM = '''
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def orders_by_status_daily(orders: DataFrame) -> DataFrame:
    """Order events per tenant, day and event type."""
    return orders.groupBy("tenant_id", "event_date", "event_type").agg(
        F.count(F.lit(1)).alias("events"), F.sum("total_price").cast("decimal(18,2)").alias("total_price")
    )
'''

MIGRATION = """
CREATE TABLE serving.orders_by_status_daily (
    tenant_id   text          NOT NULL,
    event_date  date          NOT NULL,
    event_type  text          NOT NULL,
    events      bigint,
    total_price numeric(18,2),
    CONSTRAINT orders_by_status_daily_pkey PRIMARY KEY (tenant_id, event_date, event_type)
);
"""


def test_a_mart_is_its_contract_a_transform_and_a_migration(
    isolated_serving: Settings, spark: Any, tmp_path: Path, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # isolated_lake copied config/ to tmp_path / "config" and pointed LAKEHOUSE_CONFIG_DIR at it
    (tmp_path / "config" / "marts" / "orders_by_status_daily.yaml").write_text(CONTRACT)
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "newcomer_marts.py").write_text(TRANSFORM)
    monkeypatch.syspath_prepend(str(modules))
    ddl = tmp_path / "ddl"
    shutil.copytree(DDL_DIR, ddl)
    (ddl / "V900__orders_by_status_daily.sql").write_text(MIGRATION)
    dsn = isolated_serving.postgres_dsn()
    assert migrate(dsn, ddl) == ["V900__orders_by_status_daily.sql"]

    spec = load_marts()["orders_by_status_daily"]
    case = spec.unit_tests[0]
    given = spark.createDataFrame(
        [
            (r["tenant_id"], r["event_date"], r["event_type"], Decimal(str(r["total_price"])))
            for r in case.given["orders"]
        ],
        "tenant_id string, event_date date, event_type string, total_price decimal(14,2)",
    )
    assert sorted(tuple(r) for r in compute(spec, {"orders": given}, None, None).collect()) == [
        ("t1", date(2024, 5, 1), "ORDER_CANCELLED", 1, Decimal("2.50")),
        ("t1", date(2024, 5, 1), "ORDER_PLACED", 2, Decimal("3.75")),
    ]

    day = date(2024, 5, 1)
    tenant = f"t_{unique}"
    write_silver(spark, isolated_serving, tenant, day)
    result = gold_job.build_and_check(spark, isolated_serving, spec, day, day + timedelta(days=1), dsn)
    assert result.problems == []
    assert gold_job.load(spark, isolated_serving, spec, day, day + timedelta(days=1), dsn) == 2

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tenant_id, event_date, event_type, events, total_price FROM serving.orders_by_status_daily "
            "ORDER BY event_type"
        ).fetchall()
    # the sample day: o1 placed (20.00) and cancelled (20.00), o2 placed (5.00); o3 is three days earlier
    assert rows == [
        (tenant, day, "ORDER_CANCELLED", 1, Decimal("20.00")),
        (tenant, day, "ORDER_PLACED", 2, Decimal("25.00")),
    ]


SINK = '''
import time

from lakehouse.postgres.loader import LoadResult
from lakehouse.spark.io.sinks import SinkRun


def write_mart(run: SinkRun) -> LoadResult:
    """Parquet files of the mart under <lake_root>/exports/<mart>, one folder per day: each load replaces its days."""
    began = time.perf_counter()
    path = run.settings.storage.table_path("exports", run.spec.name)
    run.rows.write.mode("overwrite").option("partitionOverwriteMode", "dynamic").partitionBy(
        str(run.spec.date_column)
    ).parquet(path)
    rows = run.rows.count()
    return LoadResult(run.spec.name, path, run.start, run.end, rows, time.perf_counter() - began)
'''


def test_a_sink_is_a_module_and_its_name_in_the_contract(
    isolated_serving: Settings, spark: Any, tmp_path: Path, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # in the package it would be spark/io/parquet_export.py, named `parquet_export`; outside it, a module path
    package = tmp_path / "modules" / "newcomer_sinks"
    package.mkdir(parents=True)
    (package / "parquet_export.py").write_text(SINK)
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    contract = tmp_path / "config" / "marts" / "device_metrics_minute.yaml"
    contract.write_text(contract.read_text() + "sinks: [postgres, newcomer_sinks.parquet_export]\n")
    spec = load_marts()["device_metrics_minute"]
    dsn = isolated_serving.postgres_dsn()
    day, tenant = date(2024, 5, 2), f"t_{unique}"
    write_silver(spark, isolated_serving, tenant, day)

    for _ in range(2):  # a rerun replaces its day in every sink
        assert gold_job.build_and_check(spark, isolated_serving, spec, day, day + timedelta(days=1), dsn).passed
        gold_job.load(spark, isolated_serving, spec, day, day + timedelta(days=1), dsn)

    exported = spark.read.parquet(isolated_serving.storage.table_path("exports", spec.name))
    keys = "tenant_id, metric_date, minute_start, device_id, metric, readings"
    with psycopg.connect(dsn) as conn:
        served = conn.execute(f"SELECT {keys} FROM serving.device_metrics_minute ORDER BY 3, 4, 5").fetchall()
    # the sample day: dev1 temperature (2 readings) and humidity at 10:00, dev2 pressure at 10:05
    assert [(r[3], r[4], r[5]) for r in served] == [
        ("dev1", "humidity", 1),
        ("dev1", "temperature", 2),
        ("dev2", "pressure", 1),
    ]
    assert sorted(
        (r["device_id"], r["metric"], r["readings"]) for r in exported.select(*keys.split(", ")).collect()
    ) == [(r[3], r[4], r[5]) for r in served]
