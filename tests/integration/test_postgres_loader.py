"""The serving loader (``load_frame``) against a real PostgreSQL and a real SparkSession: what a load writes, what
it refuses, and how a killed load is cleaned up. load_mart and the migrations are in test_postgres_loader_schema.py.

Each test loads into a table of its own (``serving.t_load_<unique>``, created like serving.fct_orders_daily:
partitioned by day, or a plain table for the tests marked so), so tests of other developers sharing the stack
are not disturbed. Expected rows are written out by hand.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from lakehouse.config.errors import ServiceUnavailableError
from lakehouse.config.settings import Settings
from lakehouse.postgres.errors import DataQualityError, ServingError, ServingUnavailableError
from lakehouse.postgres.loader import drop_orphan_stages
from lakehouse.spark.io.postgres import load_frame

pytestmark = pytest.mark.integration

COLUMNS = [
    "tenant_id",
    "order_date",
    "region",
    "channel",
    "product_category",
    "orders_placed",
    "orders_cancelled",
    "units",
    "gross_revenue",
    "cancelled_revenue",
    "avg_order_value",
    "unique_customers",
    "orders_with_coupon",
]
SPARK_SCHEMA = (
    "tenant_id string, order_date date, region string, channel string, product_category string, "
    "orders_placed bigint, orders_cancelled bigint, units bigint, gross_revenue decimal(18,2), "
    "cancelled_revenue decimal(18,2), avg_order_value decimal(18,2), unique_customers bigint, orders_with_coupon bigint"
)
# The same shape from spark.range: distinct keys for any n, all on the day given as {day}.
SYNTHETIC = [
    "concat('tenant-', CAST(id % 1000 AS STRING)) AS tenant_id",
    "DATE'{day}' AS order_date",
    "concat('region-', CAST(id DIV 1000 AS STRING)) AS region",
    "'web' AS channel",
    "'books' AS product_category",
    "id % 7 + 1 AS orders_placed",
    "id % 2 AS orders_cancelled",
    "id % 11 AS units",
    "CAST((id % 100000) / 100 AS DECIMAL(18,2)) AS gross_revenue",
    "CAST(0 AS DECIMAL(18,2)) AS cancelled_revenue",
    "CAST((id % 100000) / 100 / (id % 7 + 1) AS DECIMAL(18,2)) AS avg_order_value",
    "id % 5 AS unique_customers",
    "id % 3 AS orders_with_coupon",
]
D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def fact(tenant: str, day: date, region: str, placed: int, revenue: str, **overrides: Any) -> tuple[Any, ...]:
    """One fct_orders_daily row in table column order."""
    gross = Decimal(revenue)
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "order_date": day,
        "region": region,
        "channel": "web",
        "product_category": "books",
        "orders_placed": placed,
        "orders_cancelled": 1,
        "units": placed * 3,
        "gross_revenue": gross,
        "cancelled_revenue": Decimal("4.50"),
        "avg_order_value": (gross / placed).quantize(Decimal("0.01")),
        "unique_customers": placed - 1,
        "orders_with_coupon": placed // 2,
        **overrides,
    }
    return tuple(values[c] for c in COLUMNS)


def rows_in(dsn: str, table: str, start: date = date.min, end: date = date.max) -> list[tuple[Any, ...]]:
    """Rows of a serving table with start <= order_date < end, sorted."""
    schema, name = table.split(".")
    query = sql.SQL("SELECT {} FROM {} WHERE order_date >= %s AND order_date < %s").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.Identifier(schema, name)
    )
    with psycopg.connect(dsn) as conn:
        return sorted(conn.execute(query, (start, end)).fetchall())


def stages_of(dsn: str, table: str) -> list[str]:
    """Staging tables of one target table that exist now."""
    schema, name = table.split(".")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND starts_with(c.relname, %s)",
            (schema, f"_stage_{name}_"),
        ).fetchall()
    return [r[0] for r in rows]


def freshness(dsn: str, mart: str) -> list[tuple[Any, ...]]:
    """(interval_start, interval_end, rows, silver_watermark) of a mart, sorted."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT interval_start, interval_end, rows, silver_watermark FROM serving.freshness WHERE mart = %s "
            "ORDER BY interval_start, interval_end",
            (mart,),
        ).fetchall()


@pytest.fixture
def dsn(postgres_stack: Settings) -> str:
    """DSN of the migrated serving database."""
    return postgres_stack.postgres_dsn()


BOTH_LAYOUTS = pytest.mark.parametrize("target", ["day_partitioned", "plain"], indirect=True)


@pytest.fixture
def target(request: pytest.FixtureRequest, dsn: str, unique: str) -> Iterator[str]:
    """A fresh table shaped like serving.fct_orders_daily, dropped with its freshness rows afterwards.

    Partitioned by day like the serving tables, unless the test asks for ``plain`` (indirect parametrisation).
    """
    name = f"t_load_{unique}"
    layout = getattr(request, "param", "day_partitioned")
    partitioning = sql.SQL(" PARTITION BY RANGE (order_date)" if layout == "day_partitioned" else "")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE serving.fct_orders_daily INCLUDING ALL){}").format(
                sql.Identifier("serving", name), partitioning
            )
        )
    yield f"serving.{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        for stage in stages_of(dsn, f"serving.{name}"):
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier("serving", stage)))
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier("serving", name)))
        conn.execute("DELETE FROM serving.freshness WHERE mart = %s", (name,))


def partitions_of(dsn: str, table: str) -> list[str]:
    """Names of the partitions of a table, sorted."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            (table,),
        ).fetchall()
    return sorted(r[0] for r in rows)


@BOTH_LAYOUTS
def test_load_writes_exactly_the_frame_and_its_freshness(spark, dsn: str, target: str) -> None:
    rows = [
        fact("acme", D1, "north", 4, "100.00"),
        fact("acme", D1, 'north, "east"', 1, "0.10", cancelled_revenue=None),
        fact("acme", D2, "Zürich\nHQ", 3, "1234567890123456.78", product_category=""),
        fact("globex", D2, "south", 2, "19.99", channel="app"),
    ]
    watermark = datetime(2026, 3, 3, 0, 5, tzinfo=UTC)

    result = load_frame(
        spark.createDataFrame(rows, SPARK_SCHEMA), dsn, target, "order_date", D1, D3, silver_watermark=watermark
    )

    assert rows_in(dsn, target) == sorted(rows)
    assert (result.table, result.interval_start, result.interval_end, result.rows) == (target, D1, D3, 4)
    assert result.mart == target.split(".")[1]
    assert f"4 rows into {target} for 2026-03-01..2026-03-03" in result.summary()
    assert freshness(dsn, result.mart) == [(D1, D3, 4, watermark)]
    assert stages_of(dsn, target) == []


@BOTH_LAYOUTS
def test_reload_replaces_only_its_interval_and_is_idempotent(spark, dsn: str, target: str) -> None:
    day1 = [fact("acme", D1, "north", 4, "100.00"), fact("acme", D1, "south", 2, "10.00")]
    day2 = [fact("acme", D2, "north", 5, "50.00")]
    load_frame(spark.createDataFrame(day1, SPARK_SCHEMA), dsn, target, "order_date", D1, D2)
    load_frame(spark.createDataFrame(day2, SPARK_SCHEMA), dsn, target, "order_date", D2, D3)

    new_day1 = [fact("acme", D1, "north", 9, "90.00"), fact("initech", D1, "west", 1, "1.00")]
    frame = spark.createDataFrame(new_day1, SPARK_SCHEMA)
    load_frame(frame, dsn, target, "order_date", D1, D2)
    load_frame(frame, dsn, target, "order_date", D1, D2)

    assert rows_in(dsn, target) == sorted(new_day1 + day2)
    assert freshness(dsn, target.split(".")[1]) == [(D1, D2, 2, None), (D2, D3, 1, None)]
    assert stages_of(dsn, target) == []


def test_a_load_attaches_one_partition_per_day_and_replaces_them(spark, dsn: str, target: str) -> None:
    name = target.split(".")[1]
    three_days = [fact("acme", D1, "north", 4, "100.00"), fact("acme", D3, "north", 1, "1.00")]
    load_frame(spark.createDataFrame(three_days, SPARK_SCHEMA), dsn, target, "order_date", D1, D1 + timedelta(3))
    day2 = [fact("globex", D2, "east", 2, "2.00")]

    result = load_frame(spark.createDataFrame(day2, SPARK_SCHEMA), dsn, target, "order_date", D2, D3)

    assert result.rows == 1
    assert partitions_of(dsn, target) == [f"{name}_p20260301", f"{name}_p20260302", f"{name}_p20260303"]
    assert rows_in(dsn, target) == sorted(three_days + day2)
    with psycopg.connect(dsn) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c LEFT JOIN pg_inherits i ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass OR c.oid = %s::regclass",
            (target, target),
        ).fetchall()
        indexed = conn.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass AND indisprimary AND indisvalid",
            (f"serving.{name}_p20260302",),
        ).fetchone()
    assert len(owners) == 1  # the partitions belong to the table's owner
    assert indexed == (1,)


def test_a_reader_holding_a_replaced_day_makes_the_load_time_out_and_change_nothing(
    spark, dsn: str, target: str
) -> None:
    day1 = [fact("acme", D1, "north", 4, "100.00")]
    load_frame(spark.createDataFrame(day1, SPARK_SCHEMA), dsn, target, "order_date", D1, D2)
    rerun = spark.createDataFrame([fact("acme", D1, "north", 5, "120.00")], SPARK_SCHEMA)
    with psycopg.connect(dsn) as reader:
        # a long BI query: its transaction holds the table (ACCESS SHARE) until it ends
        reader.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(target))).fetchone()
        with pytest.raises(ServingError, match=rf"could not lock {target} within 1s .* was not changed: retry"):
            load_frame(rerun, dsn, target, "order_date", D1, D2, lock_timeout="1s")
        reader.rollback()
    assert rows_in(dsn, target) == day1
    assert stages_of(dsn, target) == []


def test_an_empty_frame_clears_its_interval(spark, dsn: str, target: str) -> None:
    day1 = [fact("acme", D1, "north", 4, "100.00")]
    day2 = [fact("acme", D2, "north", 5, "50.00")]
    load_frame(spark.createDataFrame(day1 + day2, SPARK_SCHEMA), dsn, target, "order_date", D1, D3)

    result = load_frame(spark.createDataFrame([], SPARK_SCHEMA), dsn, target, "order_date", D2, D3)

    assert result.rows == 0
    assert rows_in(dsn, target) == day1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda df: df.drop("units"), "units"),
        (lambda df: df.withColumnRenamed("region", "area"), "area"),
        (lambda df: df.withColumn("loaded_at", df["order_date"]), "loaded_at"),
    ],
    ids=["missing", "renamed", "extra"],
)
def test_column_mismatch_raises_before_touching_the_target(spark, dsn: str, target: str, change, named) -> None:
    before = [fact("acme", D1, "north", 4, "100.00")]
    load_frame(spark.createDataFrame(before, SPARK_SCHEMA), dsn, target, "order_date", D1, D2)
    frame = change(spark.createDataFrame([fact("acme", D1, "south", 1, "1.00")], SPARK_SCHEMA))

    with pytest.raises(ServingError) as error:
        load_frame(frame, dsn, target, "order_date", D1, D2, mart="orders_mart")

    message = str(error.value)
    assert "orders_mart" in message
    assert target in message
    assert named in message
    assert rows_in(dsn, target) == before
    assert stages_of(dsn, target) == []


@BOTH_LAYOUTS
def test_frame_columns_are_cast_to_the_table_types(spark, dsn: str, target: str) -> None:
    """The binary COPY writes each column in its table type: int counts, double money and a string date load."""
    rows = [fact("acme", D1, "north", 4, "100.25"), fact("acme", D1, "south", 3, "0.75")]
    narrow = spark.createDataFrame(rows, SPARK_SCHEMA).selectExpr(
        "tenant_id",
        "CAST(order_date AS STRING) AS order_date",
        "region",
        "channel",
        "product_category",
        "CAST(orders_placed AS INT) AS orders_placed",
        "CAST(orders_cancelled AS SMALLINT) AS orders_cancelled",
        "CAST(units AS INT) AS units",
        "CAST(gross_revenue AS DOUBLE) AS gross_revenue",
        "cancelled_revenue",
        "CAST(avg_order_value AS DECIMAL(30,6)) AS avg_order_value",
        "unique_customers",
        "orders_with_coupon",
    )

    load_frame(narrow, dsn, target, "order_date", D1, D2)

    assert rows_in(dsn, target) == sorted(rows)


def test_a_column_type_the_loader_does_not_write_is_named(spark, dsn: str, unique: str) -> None:
    table = f"t_json_{unique}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id bigint, doc jsonb)").format(sql.Identifier("serving", table)))
    try:
        with pytest.raises(ServingError, match=f"column doc of serving.{table} has type jsonb"):
            load_frame(spark.createDataFrame([(1, "{}")], "id bigint, doc string"), dsn, table, None, D1, D2)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier("serving", table)))


@BOTH_LAYOUTS
def test_duplicate_keys_raise_a_data_quality_error_and_change_nothing(spark, dsn: str, target: str) -> None:
    before = [fact("acme", D1, "north", 4, "100.00")]
    load_frame(spark.createDataFrame(before, SPARK_SCHEMA), dsn, target, "order_date", D1, D2)
    twice = [fact("acme", D1, "south", 1, "1.00"), fact("acme", D1, "south", 2, "2.00")]

    with pytest.raises(DataQualityError, match="primary key"):
        load_frame(spark.createDataFrame(twice, SPARK_SCHEMA), dsn, target, "order_date", D1, D2)

    assert rows_in(dsn, target) == before
    assert stages_of(dsn, target) == []


def test_a_row_the_table_rejects_fails_the_load_and_changes_nothing(spark, dsn: str, target: str) -> None:
    before = [fact("acme", D1, "north", 4, "100.00")]
    load_frame(spark.createDataFrame(before, SPARK_SCHEMA), dsn, target, "order_date", D1, D2)
    no_tenant = [fact("acme", D1, "south", 1, "1.00"), fact(None, D1, "south", 1, "1.00")]  # type: ignore[arg-type]

    with pytest.raises(ServingError, match='null value in column "tenant_id"') as error:
        load_frame(spark.createDataFrame(no_tenant, SPARK_SCHEMA), dsn, target, "order_date", D1, D2)

    assert target in str(error.value)
    assert not isinstance(error.value, ServiceUnavailableError), "a row the table rejects is no reason to retry"
    assert rows_in(dsn, target) == before
    assert stages_of(dsn, target) == []


@BOTH_LAYOUTS
def test_rows_outside_the_interval_are_refused(spark, dsn: str, target: str) -> None:
    rows = [fact("acme", D1, "north", 4, "100.00"), fact("acme", D2, "north", 1, "1.00")]

    with pytest.raises(DataQualityError, match=re.escape("1 of 2 rows have order_date outside 2026-03-01..2026-03-02")):
        load_frame(spark.createDataFrame(rows, SPARK_SCHEMA), dsn, target, "order_date", D1, D2)

    assert rows_in(dsn, target) == []
    assert stages_of(dsn, target) == []


def test_only_orphan_stages_older_than_the_limit_are_dropped(dsn: str, target: str) -> None:
    name = target.split(".")[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        now = int(conn.execute("SELECT extract(epoch FROM now())::bigint").fetchone()[0])  # type: ignore[index]
        old, fresh = f"_stage_{name}_{now - 3700}_0000beef", f"_stage_{name}_{now - 60}_0000cafe"
        for stage in (old, fresh):
            conn.execute(sql.SQL("CREATE UNLOGGED TABLE {} (x int)").format(sql.Identifier("serving", stage)))

    assert drop_orphan_stages(dsn, table=target) == [f"serving.{old}"]
    assert stages_of(dsn, target) == [fresh]
    assert drop_orphan_stages(dsn, table=target, older_than=timedelta(0)) == [f"serving.{fresh}"]


def test_a_killed_load_leaves_the_target_as_it_was_and_a_rerun_completes(
    spark, dsn: str, target: str, tmp_path: Path
) -> None:
    before = [fact("acme", D1, "north", 4, "100.00"), fact("acme", D1, "south", 2, "10.00")]
    load_frame(spark.createDataFrame(before, SPARK_SCHEMA), dsn, target, "order_date", D1, D2)
    columns = [expression.format(day=D1.isoformat()) for expression in SYNTHETIC]
    script = textwrap.dedent(f"""
        import datetime
        from lakehouse.spark.io.postgres import load_frame
        from lakehouse.spark.session import get_spark

        spark = get_spark("killed-load", {{"spark.ui.enabled": "false"}})
        frame = spark.range(0, 200_000_000, numPartitions=2).selectExpr(*{columns!r})
        load_frame(frame, {dsn!r}, {target!r}, "order_date", datetime.date(2026, 3, 1), datetime.date(2026, 3, 2))
    """)
    log = tmp_path / "loader.log"
    with log.open("wb") as out:
        # its own session: SIGKILL then reaches the driver, its JVM and the Python workers, like a lost machine
        loader = subprocess.Popen(
            [sys.executable, "-c", script], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        stage_oid = _wait_until_copying(dsn, target, loader, log)
    finally:
        os.killpg(loader.pid, signal.SIGKILL)
        loader.wait()
    _wait_until_no_copy(dsn, stage_oid)

    assert rows_in(dsn, target) == sorted(before)
    orphans = stages_of(dsn, target)
    assert len(orphans) == 1
    assert drop_orphan_stages(dsn, table=target, older_than=timedelta(0)) == [f"serving.{orphans[0]}"]

    after = [fact("acme", D1, "east", 7, "70.00")]
    result = load_frame(spark.createDataFrame(after, SPARK_SCHEMA), dsn, target, "order_date", D1, D2)
    assert result.rows == 1
    assert rows_in(dsn, target) == after
    assert stages_of(dsn, target) == []


def test_a_load_whose_connections_postgresql_drops_mid_copy_raises_a_retryable_error_and_changes_nothing(
    spark, dsn: str, target: str
) -> None:
    """What a PostgreSQL restart or failover does to a load in flight: the error says a retry may succeed (the
    Airflow task is retried, not failed for good), the target keeps its rows, and a rerun completes."""
    before = [fact("acme", D1, "north", 4, "100.00")]
    load_frame(spark.createDataFrame(before, SPARK_SCHEMA), dsn, target, "order_date", D1, D2)
    columns = [expression.format(day=D1.isoformat()) for expression in SYNTHETIC]
    frame = spark.range(0, 4_000_000, numPartitions=2).selectExpr(*columns)  # a COPY of some seconds
    terminated: list[bool] = []

    def terminate_the_copy() -> None:
        stage = _wait_until_copying(dsn, target, None)
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_progress_copy WHERE relid = %s", (stage,)
            ).fetchall()
        terminated.extend(bool(ok) for (ok,) in rows)

    terminator = threading.Thread(target=terminate_the_copy, daemon=True)
    terminator.start()
    with pytest.raises(ServingUnavailableError, match=re.escape(f"{target} was not changed")) as error:
        load_frame(frame, dsn, target, "order_date", D1, D2)
    terminator.join(timeout=60)

    assert terminated and all(terminated), "no COPY backend was terminated"
    assert isinstance(error.value, ServiceUnavailableError)
    assert "psycopg." in str(error.value)
    assert rows_in(dsn, target) == before
    drop_orphan_stages(dsn, table=target, older_than=timedelta(0))
    after = [fact("acme", D1, "east", 7, "70.00")]
    assert load_frame(spark.createDataFrame(after, SPARK_SCHEMA), dsn, target, "order_date", D1, D2).rows == 1
    assert rows_in(dsn, target) == after


def _wait_until_copying(dsn: str, target: str, loader: subprocess.Popen[bytes] | None, log: Path | None = None) -> int:
    """Oid of the staging table once a COPY (of the ``loader`` subprocess, if given) has sent rows into it."""
    name = target.split(".")[1]
    deadline = time.monotonic() + 240
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT p.relid FROM pg_stat_progress_copy p JOIN pg_class c ON c.oid = p.relid "
                "WHERE starts_with(c.relname, %s) AND p.tuples_processed > 0 LIMIT 1",
                (f"_stage_{name}_",),
            ).fetchone()
            if row is not None:
                return int(row[0])
            if loader is not None and loader.poll() is not None:
                output = log.read_text()[-4000:] if log else ""
                pytest.fail(f"the loader exited ({loader.returncode}) before copying:\n{output}")
            time.sleep(0.2)
    pytest.fail(f"the loader did not start copying within 240 s:\n{log.read_text()[-4000:] if log else ''}")


def _wait_until_no_copy(dsn: str, relid: int) -> None:
    """The killed client's backends notice the lost connection and roll back; wait for that."""
    deadline = time.monotonic() + 60
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute("SELECT 1 FROM pg_stat_progress_copy WHERE relid = %s", (relid,)).fetchone():
            assert time.monotonic() < deadline, "COPY backends still running 60 s after the loader was killed"
