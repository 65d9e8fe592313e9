"""The serving loader and migrations against the shipped serving schema, in a real PostgreSQL with a real
SparkSession: ``load_mart`` from a Gold Delta table into serving.fct_orders_daily, and the migrations that create
that schema (each in a scratch database of its own).

The load_mart test uses far-future dates in serving.fct_orders_daily and drops their partitions afterwards, so
tests of other developers sharing the stack are not disturbed. Expected rows are written out by hand.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lakehouse.config.marts import mart
from lakehouse.config.settings import Settings, load_settings
from lakehouse.postgres.errors import ServingError
from lakehouse.postgres.migrate import DDL_DIR, migrate, migration_files
from lakehouse.spark.io.postgres import load_mart
from tests.integration.test_postgres_loader import COLUMNS, D1, D2, D3, SPARK_SCHEMA, fact, partitions_of, rows_in

pytestmark = pytest.mark.integration


@pytest.fixture
def gold_settings(tmp_path: Path, postgres_stack: Settings) -> Settings:
    """Test settings whose lake lives under tmp_path (the serving database stays the shared test one, named by its
    DSN: the embedded server's password file is in the suite's state folder)."""
    environ = {**os.environ, "LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_PG_DSN": postgres_stack.postgres_dsn()}
    return load_settings(environ=environ)


def test_load_mart_loads_the_interval_of_the_gold_delta_table(
    spark, postgres_stack: Settings, gold_settings: Settings, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    # far-future days of this test alone: the shared serving.fct_orders_daily is not disturbed
    d1 = date(2400, 1, 1) + timedelta(days=4 * (int(unique, 16) % 50_000))
    d2, d3, d4, d5 = (d1 + timedelta(days=n) for n in range(1, 5))
    dsn = postgres_stack.postgres_dsn()
    inside = [fact(f"t-{unique}", d1, "north", 4, "100.00"), fact(f"t-{unique}", d2, "south", 1, "9.99")]
    outside = [fact(f"t-{unique}", d3, "north", 2, "2.00")]
    spark.createDataFrame(inside + outside, SPARK_SCHEMA).write.format("delta").partitionBy("order_date").save(
        gold_settings.storage.table_path("gold", "fct_orders_daily")
    )
    stale = fact(f"t-{unique}", d4, "west", 1, "1.00")
    try:
        result = load_mart(gold_settings, mart("fct_orders_daily"), d1, d3, spark=spark)

        assert (result.mart, result.table, result.rows) == ("fct_orders_daily", "serving.fct_orders_daily", 2)
        assert rows_in(dsn, "serving.fct_orders_daily", d1, d5) == sorted(inside)

        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT lakehouse_meta.add_day_partitions('serving.fct_orders_daily', %s, %s)", (d4, d5))
            conn.execute(
                sql.SQL("INSERT INTO serving.fct_orders_daily ({}) VALUES ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
                    sql.SQL(", ").join([sql.Placeholder()] * len(COLUMNS)),
                ),
                stale,
            )
        cleared = load_mart(gold_settings, mart("fct_orders_daily"), d4, d5, spark=spark)

        assert cleared.rows == 0
        assert rows_in(dsn, "serving.fct_orders_daily", d1, d5) == sorted(inside)
        assert f"no rows for fct_orders_daily {d4}..{d5}: interval cleared" in caplog.text
    finally:
        with psycopg.connect(dsn) as conn:
            for day in (d1, d2, d3, d4):
                conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {}").format(
                        sql.Identifier("serving", f"fct_orders_daily_p{day:%Y%m%d}")
                    )
                )
            conn.execute(
                "DELETE FROM serving.freshness WHERE mart = 'fct_orders_daily' AND interval_start >= %s "
                "AND interval_end <= %s",
                (d1, d5),
            )
            conn.execute("DELETE FROM serving.fct_orders_daily_by_channel WHERE tenant_id = %s", (f"t-{unique}",))


def test_load_mart_without_a_gold_table_names_the_path(spark, postgres_stack, gold_settings: Settings) -> None:
    path = gold_settings.storage.table_path("gold", "fct_orders_daily")

    with pytest.raises(ServingError, match=re.escape(f"no Gold Delta table at {path}")):
        load_mart(gold_settings, mart("fct_orders_daily"), D1, D2, spark=spark)


@pytest.fixture
def scratch_database(postgres_stack: Settings, unique: str) -> Iterator[str]:
    """DSN of an empty database of this test, dropped afterwards (the shared one is never tampered with)."""
    name = f"lh_migrate_{unique}"
    admin = postgres_stack.postgres_dsn("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield postgres_stack.postgres_dsn(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_migrate_applies_each_file_once_even_when_run_concurrently(scratch_database: str) -> None:
    shipped = [m.name for m in migration_files()]

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(migrate, [scratch_database, scratch_database]))

    assert sorted(runs[0] + runs[1]) == sorted(shipped)
    assert migrate(scratch_database) == []
    with psycopg.connect(scratch_database) as conn:
        recorded = conn.execute("SELECT name FROM lakehouse_meta.schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in recorded] == shipped


def test_migrate_refuses_a_changed_file_and_applies_new_ones(scratch_database: str, tmp_path: Path) -> None:
    ddl = tmp_path / "ddl"
    shutil.copytree(DDL_DIR, ddl)
    migrate(scratch_database, ddl)
    original = (ddl / "V001__serving_schema.sql").read_text()

    (ddl / "V001__serving_schema.sql").write_text(original + "\n-- a harmless-looking edit\n")
    with pytest.raises(ServingError, match=r"V001__serving_schema\.sql.*immutable"):
        migrate(scratch_database, ddl)

    (ddl / "V001__serving_schema.sql").write_text(original)
    top = max(m.version for m in migration_files())
    extra, broken_file, late = f"V{top + 5:03d}__extra.sql", f"V{top + 6:03d}__broken.sql", f"V{top + 1:03d}__late.sql"
    (ddl / extra).write_text("CREATE TABLE serving.extra (x int);\n")
    assert migrate(scratch_database, ddl) == [extra]

    (ddl / broken_file).write_text("CREATE TABLE serving.broken (x int);\nSELECT 1 / 0;\n")
    with pytest.raises(ServingError, match=re.escape(f"{broken_file}: failed and was rolled back")):
        migrate(scratch_database, ddl)
    (ddl / broken_file).unlink()
    (ddl / late).write_text("SELECT 1;\n")
    with pytest.raises(ServingError, match=f"already applied version {top + 5}"):
        migrate(scratch_database, ddl)

    with psycopg.connect(scratch_database) as conn:
        versions = conn.execute("SELECT version FROM lakehouse_meta.schema_migrations ORDER BY 1").fetchall()
        broken = conn.execute("SELECT to_regclass('serving.broken')").fetchone()
    assert [v[0] for v in versions] == [*(m.version for m in migration_files()), top + 5]
    assert broken == (None,)


def test_partitioning_by_day_keeps_the_rows_views_and_grants_of_a_database_loaded_before(
    scratch_database: str, tmp_path: Path
) -> None:
    before_v006 = tmp_path / "ddl"
    before_v006.mkdir()
    for migration in migration_files():
        if migration.version < 6:
            shutil.copy(migration.path, before_v006)
    migrate(scratch_database, before_v006)
    # the columns of before V006 (orders_with_coupon came with V017, 0 for the rows loaded before it)
    before_columns = COLUMNS[:-1]
    rows = [
        fact("acme", D1, "north", 4, "100.00", orders_with_coupon=0),
        fact("acme", D3, "south", 1, "1.00", orders_with_coupon=0),
    ]
    views_query = (
        "SELECT c.relname, c.relacl::text, obj_description(c.oid, 'pg_class'), col_description(c.oid, 1) "
        "FROM pg_class c WHERE c.relnamespace = 'serving'::regnamespace AND c.relkind = 'v' ORDER BY 1"
    )
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        for row in rows:
            conn.execute(
                sql.SQL("INSERT INTO serving.fct_orders_daily ({}) VALUES ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, before_columns)),
                    sql.SQL(", ").join([sql.Placeholder()] * len(before_columns)),
                ),
                row[: len(before_columns)],
            )
        views = conn.execute(views_query).fetchall()

    assert migrate(scratch_database) == [m.name for m in migration_files() if m.version >= 6]

    assert rows_in(scratch_database, "serving.fct_orders_daily") == sorted(rows)
    assert partitions_of(scratch_database, "serving.fct_orders_daily") == [
        "fct_orders_daily_p20260301",
        "fct_orders_daily_p20260303",
    ]
    with psycopg.connect(scratch_database) as conn:
        # the views of before are kept as they were (later migrations may add others)
        before = {view[0] for view in views}
        assert [view for view in conn.execute(views_query).fetchall() if view[0] in before] == views
        assert conn.execute("SELECT count(*) FROM serving.v_orders_daily_by_region").fetchone() == (2,)
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
            "WHERE relname ~ '^fct_orders_daily(_p[0-9]{8})?$' AND relkind IN ('r', 'p')"
        ).fetchall()
    assert owners == [("lakehouse_loader",)]
