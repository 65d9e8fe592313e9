"""Every mart of config/marts, end to end from Silver: tiny Silver Delta tables in a private lake -> ``build`` ->
``check`` (the DQ gate) -> ``load_mart`` into the real serving PostgreSQL -> read back with psycopg.

Interval marts use one day of 2024 picked per test run and a tenant of the test's own (other tests use 2025 and
2026 dates), and delete their rows afterwards. Dimensions (``load_mode: full``) are built from the shipped
reference data and replace the whole serving table, which is what every real load of them does too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from lakehouse.config.settings import Settings
from lakehouse.config.specs import MartSpec, event_type, load_marts
from lakehouse.postgres.loader import load_mart
from lakehouse.spark.jobs import gold as gold_job

pytestmark = pytest.mark.integration

MARTS = load_marts()
INTERVAL_MARTS = sorted(name for name, spec in MARTS.items() if spec.load_mode == "interval")
FULL_MARTS = sorted(name for name, spec in MARTS.items() if spec.load_mode == "full")

# Gold rows of one day of the Silver rows below, counted by hand (see the comments there).
EXPECTED_ROWS = {
    "fct_orders_daily": 2,  # (north, web, electronics) with o1 placed and cancelled; (south, unknown, unknown): o2
    "order_revenue_5min": 2,  # 10:00-10:05 north electronics (o1); 10:05-10:10 south unknown (o2)
    "customer_behavior_daily": 2,  # c1, c2 (c3 was active 10 days before)
    "product_reviews_daily": 1,  # P0001 with two reviews
    "customer_features": 3,  # c1, c2 and c3 (c3's page view is 10 days old: inside the 30-day lookback)
    "device_metrics_minute": 3,  # dev1 temperature 10:00, dev1 humidity 10:00, dev2 pressure 10:05
}
# Hand-made totals of the same rows: one column summed over the loaded table.
EXPECTED_TOTALS = {
    "fct_orders_daily": ("gross_revenue", Decimal("25.00")),
    "order_revenue_5min": ("total_revenue", Decimal("25.00")),
    "customer_behavior_daily": ("revenue", Decimal("25.00")),
    "product_reviews_daily": ("review_count", 2),
    "customer_features": ("orders_30d", 3),  # c1: o1 and o3 (3 days before), c2: o2
    "device_metrics_minute": ("readings", 4),
}
# Rows per dimension, from config/reference/README.md: 120 products; 1,500 customers of whom 150 changed segment
# or country in the second version; 2024-01-01..2027-12-31 is 366 + 3 * 365 days.
EXPECTED_FULL_ROWS = {"dim_product": 120, "dim_customer": 1650, "dim_date": 1461}
# A row that is in no build: a full load must remove it.
STALE_ROW = {
    "dim_product": "INSERT INTO serving.dim_product (product_id, valid_from) VALUES ('stale', DATE '2024-01-01')",
    "dim_customer": (
        "INSERT INTO serving.dim_customer (customer_id, tenant_id, valid_from, is_current) "
        "VALUES ('stale', 'stale', DATE '2024-01-01', true)"
    ),
    "dim_date": "INSERT INTO serving.dim_date VALUES (DATE '2099-01-01', 2099, 1, 1, 1, 2098, 53, 4, false, 'January')",
}
PG_TYPES = {
    "string": "text",
    "date": "date",
    "timestamp": "timestamp with time zone",
    "bigint": "bigint",
    "int": "integer",
    "double": "double precision",
    "boolean": "boolean",
}


def test_every_mart_is_covered() -> None:
    assert set(INTERVAL_MARTS) == set(EXPECTED_ROWS) == set(EXPECTED_TOTALS)
    assert set(FULL_MARTS) == set(EXPECTED_FULL_ROWS) == set(STALE_ROW)
    assert set(MARTS) <= set(gold_job.BUILDERS)


def _at(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def _silver_rows(day: date) -> dict[str, list[dict[str, Any]]]:
    """Silver rows of the three event types: the contract fields that matter; the rest stay null."""
    before3, before10 = day - timedelta(days=3), day - timedelta(days=10)

    def order(when: datetime, kind: str, order_id: str, customer: str, product: str, region: str, **kw: Any) -> dict:
        quantity, price = kw.pop("quantity", 1), Decimal(kw.pop("price"))
        return {
            "event_type": kind, "schema_version": kw.pop("version", 2), "event_timestamp": when,
            "order_id": order_id, "customer_id": customer, "product_id": product, "region": region,
            "channel": kw.pop("channel", "web"), "quantity": quantity, "unit_price": price / quantity,
            "total_price": price, "currency": "USD",
        }  # fmt: skip

    def click(when: datetime, kind: str, customer: str, product: str | None = None, **kw: Any) -> dict:
        return {
            "event_type": kind, "schema_version": 1, "event_timestamp": when, "customer_id": customer,
            "session_id": "s1", "product_id": product, "page": "/p", **kw,
        }  # fmt: skip

    def reading(when: datetime, device: str, metric: str, value: float, unit: str) -> dict:
        return {
            "event_type": "reading", "schema_version": 1, "event_timestamp": when, "device_id": device,
            "metric": metric, "value": value, "unit": unit,
        }  # fmt: skip

    return {
        "orders": [
            order(_at(day, 10, 1), "ORDER_PLACED", "o1", "c1", "P0001", "north", quantity=2, price="20.00"),
            # a v1 order: no channel
            order(_at(day, 10, 7), "ORDER_PLACED", "o2", "c2", "P9999", "south", price="5.00", version=1, channel=None),
            order(_at(day, 11, 0), "ORDER_CANCELLED", "o1", "c1", "P0001", "north", quantity=2, price="20.00"),
            order(_at(before3, 9, 0), "ORDER_PLACED", "o3", "c1", "P0002", "north", price="30.00"),
        ],
        "customer_events": [
            click(_at(day, 9, 0), "page_view", "c1"),
            click(_at(day, 9, 5), "add_to_cart", "c1", "P0001", quantity=1),
            click(_at(day, 12, 0), "review", "c1", "P0001", rating=5),
            click(_at(day, 13, 0), "review", "c2", "P0001", rating=2),
            click(_at(before10, 8, 0), "page_view", "c3"),
        ],
        "device_metrics": [
            reading(_at(day, 10, 0, 10), "dev1", "temperature", 21.5, "C"),
            reading(_at(day, 10, 0, 40), "dev1", "temperature", 22.5, "C"),
            reading(_at(day, 10, 0, 20), "dev1", "humidity", 45.0, "%"),
            reading(_at(day, 10, 5, 0), "dev2", "pressure", 1013.0, "hPa"),
        ],
    }  # fmt: skip


def _write_silver(spark: Any, settings: Settings, tenant: str, day: date) -> None:
    for name, rows in _silver_rows(day).items():
        spec = event_type(name)
        columns = [field.name for field in spec.fields]
        schema = ", ".join([*(f"`{f.name}` {f.spark_type}" for f in spec.fields), "event_date date"])
        values = [
            (
                *({**row, "event_id": str(uuid.uuid4()), "tenant_id": tenant}.get(c) for c in columns),
                row["event_timestamp"].date(),
            )
            for row in rows
        ]
        spark.createDataFrame(values, schema).write.format("delta").partitionBy("tenant_id", "event_date").save(
            settings.storage.table_path("silver", spec.tables.silver)
        )


def _pg_columns(dsn: str, table: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return [
            (str(name), str(kind))
            for name, kind in conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                (f"serving.{table}",),
            ).fetchall()
        ]


def _pg_type(spark_type: str) -> str:
    return spark_type.replace("decimal", "numeric") if spark_type.startswith("decimal") else PG_TYPES[spark_type]


def _normalise(value: Any) -> Any:
    """Make a value from psycopg and one from Spark's collect() comparable."""
    if isinstance(value, datetime):
        # Spark returns naive local times, psycopg aware ones
        return value.astimezone()
    if isinstance(value, float):
        return round(value, 9)
    return value


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    normalised = [tuple(_normalise(v) for v in row) for row in rows]
    return sorted(normalised, key=lambda row: tuple((v is None, str(v)) for v in row))


def _serving_rows(dsn: str, spec: MartSpec, columns: list[str], start: date, end: date) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier("serving", spec.serving_table)
    )
    params: tuple[Any, ...] = ()
    if spec.load_mode == "interval":
        assert spec.date_column is not None
        query += sql.SQL(" WHERE {c} >= %s AND {c} < %s").format(c=sql.Identifier(spec.date_column))
        params = (start, end)
    with psycopg.connect(dsn) as conn:
        return _sorted(conn.execute(query, params).fetchall())


def _gold_rows(spark: Any, settings: Settings, spec: MartSpec, start: date, end: date) -> tuple[list[str], Any]:
    frame = spark.read.format("delta").load(settings.storage.table_path("gold", spec.name))
    if spec.load_mode == "interval":
        frame = frame.where(f"{spec.date_column} >= DATE'{start}' AND {spec.date_column} < DATE'{end}'")
    return frame.columns, frame


def _build_check_load(spark: Any, settings: Settings, spec: MartSpec, start: date, end: date) -> int:
    gold_job.build(spark, settings, spec, start, end)
    problems, _, _ = gold_job.check(spark, settings, spec, start, end)
    assert problems == []
    return load_mart(settings, spec.name, start, end, spark=spark).rows


def _assert_loaded_like_gold(spark: Any, settings: Settings, spec: MartSpec, start: date, end: date) -> list:
    dsn = settings.postgres_dsn()
    columns, frame = _gold_rows(spark, settings, spec, start, end)
    # same columns, same order, matching types: what the loader and BI rely on
    assert _pg_columns(dsn, spec.serving_table) == [(name, _pg_type(kind)) for name, kind in frame.dtypes]
    gold_rows = _sorted([tuple(row) for row in frame.collect()])
    served = _serving_rows(dsn, spec, columns, start, end)
    assert served == gold_rows
    return served


@pytest.fixture
def day(unique: str) -> date:
    """A day of 2024 for this run (2024 is used by no other test; a random day keeps parallel runs apart)."""
    return date(2024, 2, 1) + timedelta(days=int(unique, 16) % 300)


@pytest.fixture
def cleanup(postgres_stack: Settings, day: date) -> Iterator[list[str]]:
    """Interval marts loaded by the test: their rows and freshness entries of ``day`` are deleted afterwards."""
    loaded: list[str] = []
    yield loaded
    with psycopg.connect(postgres_stack.postgres_dsn()) as conn:
        for name in loaded:
            spec = MARTS[name]
            assert spec.date_column is not None
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE {c} = %s").format(
                    sql.Identifier("serving", spec.serving_table), c=sql.Identifier(spec.date_column)
                ),
                (day,),
            )
            conn.execute("DELETE FROM serving.freshness WHERE mart = %s AND interval_start = %s", (name, day))


@pytest.mark.parametrize("name", INTERVAL_MARTS)
def test_interval_mart_builds_checks_and_loads_one_day(
    name: str, spark: Any, postgres_stack: Settings, isolated_lake: Settings, unique: str, day: date, cleanup: list
) -> None:
    settings, spec, end = isolated_lake, MARTS[name], day + timedelta(days=1)
    tenant = f"t-{unique}"
    _write_silver(spark, settings, tenant, day)
    cleanup.append(name)

    rows = _build_check_load(spark, settings, spec, day, end)

    assert rows == EXPECTED_ROWS[name]
    first = _assert_loaded_like_gold(spark, settings, spec, day, end)
    assert len(first) == EXPECTED_ROWS[name]
    assert {row[0] for row in first} == {tenant}
    column, total = EXPECTED_TOTALS[name]
    with psycopg.connect(settings.postgres_dsn()) as conn:
        row = conn.execute(
            sql.SQL("SELECT sum({}) FROM {} WHERE {} = %s").format(
                sql.Identifier(column),
                sql.Identifier("serving", spec.serving_table),
                sql.Identifier(str(spec.date_column)),
            ),
            (day,),
        ).fetchone()
        assert row is not None and row[0] == total
        freshness = conn.execute(
            "SELECT rows FROM serving.freshness WHERE mart = %s AND interval_start = %s AND interval_end = %s",
            (name, day, end),
        ).fetchone()
        assert freshness == (EXPECTED_ROWS[name],)

    # a rerun of the interval gives exactly the same rows
    assert _build_check_load(spark, settings, spec, day, end) == EXPECTED_ROWS[name]
    assert _assert_loaded_like_gold(spark, settings, spec, day, end) == first


@pytest.mark.parametrize("name", FULL_MARTS)
def test_full_mart_replaces_the_whole_serving_table(
    name: str, spark: Any, postgres_stack: Settings, isolated_lake: Settings, day: date
) -> None:
    settings, spec, end = isolated_lake, MARTS[name], day + timedelta(days=1)
    dsn = settings.postgres_dsn()
    try:
        assert _build_check_load(spark, settings, spec, day, end) == EXPECTED_FULL_ROWS[name]
        first = _assert_loaded_like_gold(spark, settings, spec, day, end)
        assert len(first) == EXPECTED_FULL_ROWS[name]

        with psycopg.connect(dsn) as conn:
            conn.execute(STALE_ROW[name])
        # a rerun (on another day: dimensions ignore the interval) replaces every row, the stale one too
        assert _build_check_load(spark, settings, spec, end, end + timedelta(days=1)) == EXPECTED_FULL_ROWS[name]
        assert _assert_loaded_like_gold(spark, settings, spec, day, end) == first
    finally:
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "DELETE FROM serving.freshness WHERE mart = %s AND interval_start IN (%s, %s)", (name, day, end)
            )


def test_dim_customer_serves_history_and_one_current_row_per_customer(
    spark: Any, postgres_stack: Settings, isolated_lake: Settings, day: date
) -> None:
    settings, spec = isolated_lake, MARTS["dim_customer"]
    try:
        _build_check_load(spark, settings, spec, day, day + timedelta(days=1))
        with psycopg.connect(settings.postgres_dsn()) as conn:
            counts = conn.execute(
                "SELECT count(*) FILTER (WHERE is_current), count(*) FILTER (WHERE NOT is_current), "
                "count(*) FILTER (WHERE NOT is_current AND valid_to = DATE '2026-06-01' "
                "AND valid_from = DATE '2026-01-01') FROM serving.dim_customer"
            ).fetchone()
            # tenant_01-C0001 moved from consumer to small_business on 2026-06-01 (config/reference/customers)
            history = conn.execute(
                "SELECT segment, valid_from, valid_to, is_current FROM serving.dim_customer "
                "WHERE customer_id = 'tenant_01-C0001' ORDER BY valid_from"
            ).fetchall()
    finally:
        with psycopg.connect(settings.postgres_dsn()) as conn:
            conn.execute("DELETE FROM serving.freshness WHERE mart = 'dim_customer' AND interval_start = %s", (day,))
    assert counts == (1500, 150, 150)
    assert history == [
        ("consumer", date(2026, 1, 1), date(2026, 6, 1), False),
        ("small_business", date(2026, 6, 1), None, True),
    ]


@pytest.mark.parametrize("view", ["v_customer_360", "v_product_reviews_daily"])
def test_bi_views_over_the_marts_are_readable(postgres_stack: Settings, view: str) -> None:
    with psycopg.connect(postgres_stack.postgres_dsn()) as conn:
        cursor = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(sql.Identifier("serving", view)))
        assert cursor.description is not None
        assert cursor.description[0].name == "tenant_id"
