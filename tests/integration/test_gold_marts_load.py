"""Every mart of config/marts, end to end from Silver: tiny Silver Delta tables in a private lake -> ``build`` ->
``check`` (the DQ gate) -> ``load_mart`` into the real serving PostgreSQL -> read back with psycopg.

Interval marts use one day of 2024 picked per test run and a tenant of the test's own (other tests use 2025 and
2026 dates), and delete their rows afterwards. Dimensions (``load_mode: full``) are built from the shipped
reference data and replace the whole serving table, which is what every real load of them does too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from lakehouse.config.marts import MartSpec, load_marts
from lakehouse.config.settings import Settings
from lakehouse.postgres.loader import record_sla
from lakehouse.scripts.chaos_gold import sorted_rows
from lakehouse.spark.io.postgres import load_mart
from lakehouse.spark.jobs import gold as gold_job
from tests.silver_samples import EXPECTED_FULL_ROWS, EXPECTED_ROWS, EXPECTED_TOTALS, write_silver

pytestmark = pytest.mark.integration

MARTS = load_marts()
INTERVAL_MARTS = sorted(name for name, spec in MARTS.items() if spec.load_mode == "interval")
FULL_MARTS = sorted(name for name, spec in MARTS.items() if spec.load_mode == "full")

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


@pytest.mark.parametrize("name", sorted(MARTS))
def test_serving_table_matches_the_contract(postgres_stack: Settings, name: str) -> None:
    """The migrated serving table has the contract's columns, in order, with the matching PostgreSQL types, and
    the grain as its primary key."""
    spec = MARTS[name]
    dsn = postgres_stack.postgres_dsn()
    assert _pg_columns(dsn, spec.serving_table) == [(c.name, _pg_type(c.type)) for c in spec.columns]
    assert _primary_key(dsn, spec.serving_table) == spec.grain
    types = {c.name: c.type for c in spec.columns}
    for rollup in spec.rollups:  # a rollup: its grain, then its sums, with the mart's types; the grain as its key
        columns = _pg_columns(dsn, rollup.table)
        assert columns == [(c, _pg_type(types[c])) for c in [*rollup.grain, *rollup.sums]], rollup.table
        assert _primary_key(dsn, rollup.table) == rollup.grain


def _primary_key(dsn: str, table: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        key = conn.execute(
            "SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_catalog.pg_constraint c "
            "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
            "WHERE c.conrelid = %s::regclass AND c.contype = 'p'",
            (f"serving.{table}",),
        ).fetchone()
    assert key is not None
    return list(key[0])


def _assert_rollups_follow(dsn: str, spec: MartSpec, day: date) -> None:
    """Each rollup's rows of ``day`` are the mart's serving rows of that day summed per the rollup's grain."""
    for rollup in spec.rollups:
        grain = sql.SQL(", ").join(map(sql.Identifier, rollup.grain))
        day_of = sql.SQL("WHERE {} = %s").format(sql.Identifier(str(spec.date_column)))
        summed = sql.SQL("SELECT {}, {} FROM {} {} GROUP BY {}").format(
            grain,
            sql.SQL(", ").join(sql.SQL("sum({})").format(sql.Identifier(c)) for c in rollup.sums),
            sql.Identifier("serving", spec.serving_table),
            day_of,
            grain,
        )
        kept = sql.SQL("SELECT {}, {} FROM {} {}").format(
            grain,
            sql.SQL(", ").join(map(sql.Identifier, rollup.sums)),
            sql.Identifier("serving", rollup.table),
            day_of,
        )
        with psycopg.connect(dsn) as conn:
            expected = sorted(conn.execute(summed, (day,)).fetchall())
            assert expected, f"{spec.name} loaded no rows on {day}"
            assert sorted(conn.execute(kept, (day,)).fetchall()) == expected, rollup.table


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
        return sorted_rows(conn.execute(query, params).fetchall())


def _gold_rows(spark: Any, settings: Settings, spec: MartSpec, start: date, end: date) -> tuple[list[str], Any]:
    frame = spark.read.format("delta").load(settings.storage.table_path("gold", spec.name))
    if spec.load_mode == "interval":
        frame = frame.where(f"{spec.date_column} >= DATE'{start}' AND {spec.date_column} < DATE'{end}'")
    return frame.columns, frame


def _build_check_load(spark: Any, settings: Settings, spec: MartSpec, start: date, end: date) -> int:
    gold_job.build(spark, settings, spec, start, end)
    problems, _, _ = gold_job.check(spark, settings, spec, start, end)
    assert problems == []
    return load_mart(settings, spec, start, end, spark=spark).rows


def _assert_loaded_like_gold(spark: Any, settings: Settings, spec: MartSpec, start: date, end: date) -> list:
    dsn = settings.postgres_dsn()
    columns, frame = _gold_rows(spark, settings, spec, start, end)
    # same columns, same order, matching types: what the loader and BI rely on
    assert _pg_columns(dsn, spec.serving_table) == [(name, _pg_type(kind)) for name, kind in frame.dtypes]
    gold_rows = sorted_rows([tuple(row) for row in frame.collect()])
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
            for rollup in spec.rollups:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {c} = %s").format(
                        sql.Identifier("serving", rollup.table), c=sql.Identifier(spec.date_column)
                    ),
                    (day,),
                )


@pytest.mark.parametrize("name", INTERVAL_MARTS)
def test_interval_mart_builds_checks_and_loads_one_day(
    name: str, spark: Any, postgres_stack: Settings, isolated_lake: Settings, unique: str, day: date, cleanup: list
) -> None:
    settings, spec, end = isolated_lake, MARTS[name], day + timedelta(days=1)
    tenant = f"t-{unique}"
    write_silver(spark, settings, tenant, day)
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
        # the load wrote the contract's SLA, and its load just now is within it
        sla = conn.execute("SELECT sla_minutes FROM serving.mart_sla WHERE mart = %s", (name,)).fetchone()
        assert sla == (spec.freshness_sla_minutes,)
        assert conn.execute("SELECT over_sla FROM serving.v_mart_freshness WHERE mart = %s", (name,)).fetchone() == (
            False,
        )

    _assert_rollups_follow(settings.postgres_dsn(), spec, day)

    # a rerun of the interval gives exactly the same rows
    assert _build_check_load(spark, settings, spec, day, end) == EXPECTED_ROWS[name]
    assert _assert_loaded_like_gold(spark, settings, spec, day, end) == first
    _assert_rollups_follow(settings.postgres_dsn(), spec, day)


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


def test_the_freshness_view_flags_the_marts_whose_latest_load_is_over_their_sla(
    postgres_stack: Settings, unique: str
) -> None:
    dsn = postgres_stack.postgres_dsn()
    now = datetime.now(UTC)
    # mart: (ages of its loads in minutes, SLA in minutes or None)
    marts = {f"late_{unique}": ([300, 90], 60), f"fresh_{unique}": ([300, 10], 60), f"nosla_{unique}": ([5], None)}
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            for mart, (ages, sla) in marts.items():
                for index, age in enumerate(ages):
                    conn.execute(
                        "INSERT INTO serving.freshness (mart, interval_start, interval_end, rows, loaded_at) "
                        "VALUES (%s, %s, %s, 1, %s)",
                        (mart, date(2024, 1, 1 + index), date(2024, 1, 2 + index), now - timedelta(minutes=age)),
                    )
                if sla is not None:
                    record_sla(dsn, mart, 1)
                    record_sla(dsn, mart, sla)  # a changed contract replaces the SLA
            found = {
                row[0]: row[1:]
                for row in conn.execute(
                    "SELECT mart, age_minutes, sla_minutes, over_sla FROM serving.v_mart_freshness "
                    "WHERE mart = ANY(%s)",
                    (list(marts),),
                )
            }
        finally:
            conn.execute("DELETE FROM serving.freshness WHERE mart = ANY(%s)", (list(marts),))
            conn.execute("DELETE FROM serving.mart_sla WHERE mart = ANY(%s)", (list(marts),))
    expected = {}
    for mart, (ages, sla) in marts.items():
        newest = min(ages)
        expected[mart] = (newest, sla, None if sla is None else newest > sla)
    assert {m: (abs(f[0] - expected[m][0]) <= 1, *f[1:]) for m, f in found.items()} == {
        m: (True, *e[1:]) for m, e in expected.items()
    }
