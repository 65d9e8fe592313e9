"""The roles of the serving database, checked by logging in as a member of each.

Login roles are created per test (a random password, which the server checks) and dropped afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from lakehouse.config.settings import Settings
from lakehouse.postgres.errors import ServingError
from lakehouse.postgres.roles import create_login
from lakehouse.scripts.bench import ROOT, named_queries
from lakehouse.spark.io.postgres import load_frame

pytestmark = pytest.mark.integration

DENIED = psycopg.errors.InsufficientPrivilege
FACT_ROW = "('acme', DATE '2400-01-01', 'north', 'web', 'books', 1, 0, 1, 1.00, 0.00, 1.00, 1)"


@pytest.fixture
def admin(postgres_stack: Settings) -> Iterator[psycopg.Connection]:
    """A superuser connection to the migrated serving database."""
    with psycopg.connect(postgres_stack.postgres_dsn(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def scratch(admin: psycopg.Connection, unique: str) -> Iterator[dict[str, str]]:
    """Tables the test creates as the migrating role: one in public, one new table in serving."""
    tables = {"public": f"public.t_secret_{unique}", "serving": f"serving.t_new_{unique}"}
    admin.execute(f"CREATE TABLE {tables['public']} (x int)")
    admin.execute(f"INSERT INTO {tables['public']} VALUES (1)")
    admin.execute(f"CREATE TABLE {tables['serving']} (LIKE serving.fct_orders_daily INCLUDING ALL)")
    admin.execute(f"INSERT INTO {tables['serving']} VALUES {FACT_ROW}")
    yield tables
    for table in tables.values():
        admin.execute(f"DROP TABLE IF EXISTS {table}")


@contextmanager
def login_role(admin: psycopg.Connection, settings: Settings, group: str, unique: str) -> Iterator[str]:
    """The DSN of a login role that is a member of ``group``, dropped afterwards (with what it owns)."""
    role = f"t_{group}_{unique}"
    password = secrets.token_urlsafe(16)
    create_login(admin, role, password, group)
    try:
        yield psycopg.conninfo.make_conninfo(settings.postgres_dsn(), user=role, password=password)
    finally:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def reader_dsn(admin: psycopg.Connection, postgres_stack: Settings, unique: str) -> Iterator[str]:
    """DSN of a login role that is a member of bi_reader."""
    with login_role(admin, postgres_stack, "bi_reader", unique) as dsn:
        yield dsn


@pytest.fixture
def loader_dsn(admin: psycopg.Connection, postgres_stack: Settings, unique: str) -> Iterator[str]:
    """DSN of a login role that is a member of lakehouse_loader."""
    with login_role(admin, postgres_stack, "lakehouse_loader", unique) as dsn:
        yield dsn


def test_bi_reader_reads_the_serving_tables_and_views_including_new_ones(
    reader_dsn: str, scratch: dict[str, str]
) -> None:
    with psycopg.connect(reader_dsn, autocommit=True) as conn:
        for relation in (
            "serving.fct_orders_daily",
            "serving.v_orders_daily_by_region",
            "serving.freshness",
            "serving.load_alerts",
            "serving.ml_model_decisions",
            "serving.ml_serving_latency",
        ):
            conn.execute(f"SELECT count(*) FROM {relation}").fetchone()
        # created after the migrations: readable through the default privileges
        assert conn.execute(f"SELECT tenant_id FROM {scratch['serving']}").fetchall() == [("acme",)]


def test_bi_reader_runs_every_documented_bi_query(reader_dsn: str, admin: psycopg.Connection, unique: str) -> None:
    day, tenant = date(2399, 6, 15), f"bi_{unique}"
    admin.execute(
        "SELECT lakehouse_meta.add_day_partitions('serving.fct_orders_daily', %s, %s)", (day, day.replace(day=16))
    )
    admin.execute(
        "INSERT INTO serving.fct_orders_daily VALUES (%s, %s, 'north', 'web', 'books', 3, 1, 7, 30.00, 5.00, 10.00, 2)",
        (tenant, day),
    )
    reader = psycopg.conninfo.conninfo_to_dict(reader_dsn)["user"]
    # the login sees the tenant's rows once mapped to it (test_postgres_tenants.py checks the mapping itself)
    admin.execute(
        "INSERT INTO lakehouse_meta.bi_tenant_grants (role_name, tenant_id) VALUES (%s, %s)", (reader, tenant)
    )
    expected = {
        "tenant_revenue_by_region_last_7_days": [("north", 3, Decimal("30.00"))],
        "tenant_daily_trend_30_days": [(day, 3, Decimal("30.00"), Decimal("10.00"))],
        "top_categories_one_day_all_tenants": [("books", Decimal("30.00"), 7)],
        "tenant_channel_mix_month": [("web", 3, 1, Decimal("25.00"))],
    }
    try:
        with psycopg.connect(reader_dsn) as conn:
            results = {
                name: conn.execute(query.encode(), {"tenant": tenant, "day": day}).fetchall()
                for name, query in named_queries(ROOT / "docs" / "bi_queries.sql").items()
            }
    finally:
        admin.execute(f"DROP TABLE serving.fct_orders_daily_p{day:%Y%m%d}")
        admin.execute("DELETE FROM lakehouse_meta.bi_tenant_grants WHERE tenant_id = %s", (tenant,))

    assert results == expected


@pytest.mark.parametrize(
    "statement",
    [
        f"INSERT INTO serving.fct_orders_daily VALUES {FACT_ROW}",
        "UPDATE serving.fct_orders_daily SET units = 0 WHERE false",
        "DELETE FROM serving.fct_orders_daily WHERE false",
        "TRUNCATE serving.fct_orders_daily",
        "INSERT INTO serving.load_alerts (dag_id, task_id, run_id, reason) VALUES ('d', 't', 'r', 'x')",
        "INSERT INTO serving.freshness (mart, interval_start, interval_end, rows) VALUES ('m', now(), now(), 0)",
        "UPDATE {serving} SET units = 0",
        "DELETE FROM serving.ml_model_decisions WHERE false",
        "DELETE FROM serving.ml_serving_latency WHERE false",
        "CREATE TABLE serving.t_reader_made (x int)",
        "CREATE VIEW serving.v_reader_made AS SELECT 1 AS x",
        "CREATE TABLE public.t_reader_made (x int)",
        "SELECT * FROM lakehouse_meta.schema_migrations",
        "SELECT * FROM {public}",
    ],
    ids=lambda s: s.split(" (")[0][:48],
)
def test_bi_reader_can_do_nothing_else(reader_dsn: str, scratch: dict[str, str], statement: str) -> None:
    with psycopg.connect(reader_dsn, autocommit=True) as conn, pytest.raises(DENIED):
        conn.execute(statement.format(**scratch).encode())


def test_bi_reader_reaches_only_the_serving_database(
    reader_dsn: str, admin: psycopg.Connection, postgres_stack: Settings
) -> None:
    databases = [row[0] for row in admin.execute("SELECT datname FROM pg_database WHERE datallowconn")]
    assert postgres_stack.airflow.metadata_database in databases
    reached = []
    for database in databases:
        try:
            psycopg.connect(psycopg.conninfo.make_conninfo(reader_dsn, dbname=database)).close()
            reached.append(database)
        except psycopg.OperationalError as refused:
            assert f'permission denied for database "{database}"' in str(refused)
    assert reached == [postgres_stack.postgres.database]


def test_a_wrong_password_is_refused(reader_dsn: str) -> None:
    password = psycopg.conninfo.conninfo_to_dict(reader_dsn)["password"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(psycopg.conninfo.make_conninfo(reader_dsn, password=f"{password}x")).close()


def test_loader_writes_serving_tables(loader_dsn: str, scratch: dict[str, str]) -> None:
    with psycopg.connect(loader_dsn, autocommit=True) as conn:
        table = scratch["serving"]
        conn.execute(f"UPDATE {table} SET units = 42")
        conn.execute(f"INSERT INTO {table} VALUES {FACT_ROW.replace('north', 'south')}")
        conn.execute(f"DELETE FROM {table} WHERE region = 'north'")
        assert conn.execute(f"SELECT region, units FROM {table}").fetchall() == [("south", 1)]
        conn.execute(f"TRUNCATE {table}")
        conn.execute("CREATE TABLE serving.t_loader_made (x int)")
        conn.execute("DROP TABLE serving.t_loader_made")
        with conn.transaction(force_rollback=True):
            # the loader owns the day-partitioned serving tables: it adds and swaps their partitions
            conn.execute(
                "SELECT lakehouse_meta.add_day_partitions('serving.fct_orders_daily', '2400-01-01', '2400-01-02')"
            )
            conn.execute(f"INSERT INTO serving.fct_orders_daily VALUES {FACT_ROW}")
            conn.execute(
                "INSERT INTO serving.load_alerts (dag_id, task_id, run_id, reason) VALUES ('d', 't', 'r', 'x')"
            )
        for statement in ("SELECT * FROM lakehouse_meta.schema_migrations", f"SELECT * FROM {scratch['public']}"):
            with pytest.raises(DENIED):
                conn.execute(statement.encode())


@pytest.mark.parametrize("layout", ["plain", "day_partitioned"])
def test_loader_role_runs_a_whole_load(spark, loader_dsn: str, scratch: dict[str, str], admin, layout: str) -> None:
    table = scratch["serving"] if layout == "plain" else "serving.fct_orders_daily"
    row = ("acme", date(2400, 1, 1), "east", "web", "books", 2, 0, 5, 3, 0, 1.5, 2, 1)
    frame = spark.createDataFrame(
        [row],
        "tenant_id string, order_date date, region string, channel string, product_category string, "
        "orders_placed bigint, orders_cancelled bigint, units bigint, gross_revenue int, cancelled_revenue int, "
        "avg_order_value double, unique_customers bigint, orders_with_coupon bigint",
    )
    mart = f"{table.split('.')[1]}_{layout}"
    try:
        result = load_frame(frame, loader_dsn, table, "order_date", date(2400, 1, 1), date(2400, 1, 2), mart=mart)

        assert result.rows == 1
        assert admin.execute(
            f"SELECT region, units, avg_order_value::text FROM {table} WHERE order_date = '2400-01-01'"
        ).fetchall() == [("east", 5, "1.50")]
        if layout == "day_partitioned":
            # the swapped-in partition is read through its table only, where row-level security applies
            assert admin.execute(
                "SELECT has_table_privilege('bi_reader', 'serving.fct_orders_daily_p24000101', 'SELECT')"
            ).fetchone() == (False,)
    finally:
        admin.execute("DELETE FROM serving.freshness WHERE mart = %s", (mart,))
        admin.execute("DROP TABLE IF EXISTS serving.fct_orders_daily_p24000101")


def test_a_role_outside_lakehouse_loader_gets_the_runbook_fix(
    spark, admin: psycopg.Connection, postgres_stack: Settings, unique: str
) -> None:
    """A role with every table privilege but not a member of lakehouse_loader, the owner of the day-partitioned
    serving tables, cannot swap their partitions: the load names the GRANT (docs/runbook.md) and changes nothing."""
    role = f"t_outsider_{unique}"
    password = secrets.token_urlsafe(16)
    database = sql.Identifier(postgres_stack.postgres.database)
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    admin.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, sql.Identifier(role)))
    admin.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA serving TO {}").format(sql.Identifier(role)))
    admin.execute(sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA serving TO {}").format(sql.Identifier(role)))
    frame = spark.sql(
        "SELECT 'acme' AS tenant_id, DATE'2401-01-01' AS order_date, 'east' AS region, 'web' AS channel, "
        "'books' AS product_category, 1L AS orders_placed, 0L AS orders_cancelled, 1L AS units, "
        "1.00 AS gross_revenue, 0.00 AS cancelled_revenue, 1.00 AS avg_order_value, 1L AS unique_customers, "
        "0L AS orders_with_coupon"
    )
    outsider = psycopg.conninfo.make_conninfo(postgres_stack.postgres_dsn(), user=role, password=password)
    try:
        with pytest.raises(
            ServingError,
            match=r"must be a member of lakehouse_loader, the owner of serving\.fct_orders_daily, .*: "
            r"GRANT lakehouse_loader TO <loading role>",
        ):
            load_frame(frame, outsider, "serving.fct_orders_daily", "order_date", date(2401, 1, 1), date(2401, 1, 2))
        assert admin.execute(
            "SELECT count(*) FROM serving.fct_orders_daily WHERE order_date >= '2401-01-01'"
        ).fetchone() == (0,)
    finally:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(database, sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
