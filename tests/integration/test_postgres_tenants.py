"""Tenant isolation for BI: row-level security on every serving table and view with a tenant_id, checked by
logging in as bi_reader members mapped to one tenant, to a group mapped to another, to none and to all.

The module migrates a serving database of its own (no other test's tables or rows in it). Rows for two tenants are
written into every tenant table (a value per column type, written out here), so the expected rows of each login are
those rows, counted as the superuser.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from lakehouse.config.settings import Settings
from tests.integration.test_postgres_roles import login_role

pytestmark = pytest.mark.integration

DAY = date(2500, 1, 1)
# written out by hand: a serving relation added later must be put in one of these on purpose
TENANT_TABLES = {
    "customer_behavior_daily",
    "customer_features",
    "device_metrics_minute",
    "dim_customer",
    "fct_orders_daily",
    "fct_orders_daily_by_channel",
    "order_revenue_5min",
    "product_reviews_daily",
}
TENANT_VIEWS = {"v_customer_360", "v_orders_daily_by_region", "v_product_reviews_daily"}
PLATFORM_RELATIONS = {
    "dim_date",
    "dim_product",
    "freshness",
    "load_alerts",
    "mart_sla",
    "ml_alerts",
    "ml_model_decisions",
    "ml_score_drift",
    "ml_serving_latency",
    "ml_stream_scoring_latency",
    "v_mart_freshness",
    "v_stream_health",
}


def _value(data_type: str, tenant: str) -> Any:
    values: dict[str, Any] = {
        "text": tenant,  # every text column: ids differ between the two tenants, and joins on them match
        "character varying": tenant,
        "date": DAY,
        "timestamp with time zone": datetime(2500, 1, 1, 12, tzinfo=UTC),
        "timestamp without time zone": datetime(2500, 1, 1, 12),
        "smallint": 1,
        "integer": 1,
        "bigint": 1,
        "numeric": 1,
        "double precision": 1.0,
        "real": 1.0,
        "boolean": True,
        "jsonb": "{}",
    }
    if data_type not in values:
        pytest.fail(f"no test value for a column of type {data_type}: add one to _value")
    return values[data_type]


def _relations(conn: psycopg.Connection, with_tenant: bool) -> dict[str, str]:
    rows = conn.execute(
        "SELECT c.relname, c.relkind FROM pg_class c WHERE c.relnamespace = 'serving'::regnamespace "
        "AND c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition "
        "AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' "
        "AND NOT a.attisdropped) = %s",
        (with_tenant,),
    ).fetchall()
    return {name: kind for name, kind in rows}


def _insert_row(conn: psycopg.Connection, table: str, tenant: str) -> None:
    columns = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'serving' "
        "AND table_name = %s AND is_nullable = 'NO' AND column_default IS NULL ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier("serving", table),
            sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        ),
        [_value(data_type, tenant) for _, data_type in columns],
    )


@pytest.fixture(scope="module")
def tenant_db(postgres_stack: Settings) -> Iterator[str]:
    """The name of a freshly migrated serving database, dropped afterwards."""
    from lakehouse.postgres.migrate import migrate
    from lakehouse.scripts.postgres_server import ensure_database

    name = f"tenants_{uuid.uuid4().hex[:8]}"
    ensure_database(postgres_stack.postgres_dsn("postgres"), name)
    migrate(postgres_stack.postgres_dsn(name))
    yield name
    with psycopg.connect(postgres_stack.postgres_dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def admin(postgres_stack: Settings, tenant_db: str) -> Iterator[psycopg.Connection]:
    """A superuser connection to the module's serving database."""
    with psycopg.connect(postgres_stack.postgres_dsn(tenant_db), autocommit=True) as conn:
        yield conn


@contextmanager
def bi_login(admin: psycopg.Connection, settings: Settings, group: str, name: str) -> Iterator[str]:
    """The DSN, on the module's database, of a login role that is a member of ``group``."""
    with login_role(admin, settings, group, name) as dsn:
        yield psycopg.conninfo.make_conninfo(dsn, dbname=admin.info.dbname)


@pytest.fixture
def tenants(admin: psycopg.Connection, unique: str) -> Iterator[tuple[str, str]]:
    """Two tenants of the test's own, with one row in every tenant table (day partitions made where needed)."""
    pair = (f"ta{unique}", f"tb{unique}")
    for table, kind in _relations(admin, with_tenant=True).items():
        if kind == "p":
            admin.execute(
                "SELECT lakehouse_meta.add_day_partitions(%s::regclass, %s, %s)",
                (f"serving.{table}", DAY, date(2500, 1, 2)),
            )
        if kind != "v":
            for tenant in pair:
                _insert_row(admin, table, tenant)
    yield pair
    for table, kind in _relations(admin, with_tenant=True).items():
        if kind != "v":
            admin.execute(
                sql.SQL("DELETE FROM {} WHERE tenant_id = ANY(%s)").format(sql.Identifier("serving", table)),
                [list(pair)],
            )
    admin.execute("DELETE FROM lakehouse_meta.bi_tenant_grants WHERE tenant_id = ANY(%s)", [list(pair)])


def _seen(dsn: str, relations: set[str], tenants: tuple[str, str]) -> dict[str, dict[str, int]]:
    """Per relation: the rows of each of ``tenants`` and of any tenant, as the role of ``dsn`` sees them."""
    seen = {}
    with psycopg.connect(dsn) as conn:
        for relation in sorted(relations):
            query = sql.SQL(
                "SELECT count(*) FILTER (WHERE tenant_id = %s), count(*) FILTER (WHERE tenant_id = %s), count(*) "
                "FROM {}"
            ).format(sql.Identifier("serving", relation))
            first, second, every = conn.execute(query, tenants).fetchone()  # type: ignore[misc]
            seen[relation] = {tenants[0]: first, tenants[1]: second, "any": every}
    return seen


def test_every_serving_relation_is_tenant_scoped_or_platform_wide(admin: psycopg.Connection) -> None:
    scoped = _relations(admin, with_tenant=True)
    assert {name for name, kind in scoped.items() if kind != "v"} == TENANT_TABLES
    assert {name for name, kind in scoped.items() if kind == "v"} == TENANT_VIEWS
    assert set(_relations(admin, with_tenant=False)) == PLATFORM_RELATIONS
    protected = admin.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'serving'::regnamespace AND c.relrowsecurity "
        "AND EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'bi_tenant_rows')"
    ).fetchall()
    assert {name for (name,) in protected} == TENANT_TABLES
    invokers = admin.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'serving'::regnamespace AND relkind = 'v' "
        "AND 'security_invoker=true' = ANY(reloptions)"
    ).fetchall()
    assert {name for (name,) in invokers} == TENANT_VIEWS


def test_a_bi_login_sees_the_rows_of_its_tenants_and_no_other(
    admin: psycopg.Connection, postgres_stack: Settings, tenant_db: str, tenants: tuple[str, str], unique: str
) -> None:
    first, second = tenants
    relations = TENANT_TABLES | TENANT_VIEWS
    as_admin = _seen(postgres_stack.postgres_dsn(tenant_db), relations, tenants)
    for relation, counts in as_admin.items():
        assert counts[first] >= 1 and counts[second] >= 1, relation  # the check below is not about empty tables

    group = f"t_tenant_group_{unique}"
    admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)))
    try:
        with (
            bi_login(admin, postgres_stack, "bi_reader", f"{unique}_one") as mapped,
            bi_login(admin, postgres_stack, "bi_reader", f"{unique}_grp") as via_group,
            bi_login(admin, postgres_stack, "bi_reader", f"{unique}_none") as unmapped,
            bi_login(admin, postgres_stack, "bi_all_tenants", f"{unique}_all") as everything,
        ):
            login = psycopg.conninfo.conninfo_to_dict(mapped)["user"]
            group_member = psycopg.conninfo.conninfo_to_dict(via_group)["user"]
            admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(group_member)))
            admin.execute(
                "INSERT INTO lakehouse_meta.bi_tenant_grants (role_name, tenant_id) VALUES (%s, %s), (%s, %s)",
                (login, first, group, second),
            )

            only_first = {r: {first: c[first], second: 0, "any": c[first]} for r, c in as_admin.items()}
            assert _seen(mapped, relations, tenants) == only_first
            only_second = {r: {first: 0, second: c[second], "any": c[second]} for r, c in as_admin.items()}
            assert _seen(via_group, relations, tenants) == only_second
            assert _seen(unmapped, relations, tenants) == {r: {first: 0, second: 0, "any": 0} for r in relations}
            both = _seen(everything, relations, tenants)
            assert {r: (c[first], c[second]) for r, c in both.items()} == {
                r: (c[first], c[second]) for r, c in as_admin.items()
            }
            with psycopg.connect(unmapped) as conn:  # what is not a tenant's stays readable
                for relation in sorted(PLATFORM_RELATIONS):
                    conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("serving", relation)))
    finally:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(group)))


def test_day_partitions_are_reachable_only_through_their_table(
    admin: psycopg.Connection, postgres_stack: Settings, tenants: tuple[str, str], unique: str
) -> None:
    partitions = [
        name
        for (name,) in admin.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'serving'::regnamespace AND relispartition"
        )
    ]
    assert any(name.endswith("_p25000101") for name in partitions)
    readable = admin.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'serving'::regnamespace AND relispartition "
        "AND has_table_privilege('bi_reader', oid, 'SELECT')"
    ).fetchall()
    assert readable == []
    with (
        bi_login(admin, postgres_stack, "bi_all_tenants", unique) as reader,  # bi_reader, and every tenant
        psycopg.connect(reader) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("serving", "fct_orders_daily_p25000101")))


def test_policed_queries_keep_their_parallel_workers_and_each_login_its_rows(
    admin: psycopg.Connection, postgres_stack: Settings, tenant_db: str, tenants: tuple[str, str], unique: str
) -> None:
    """The policies' functions are parallel safe: a parallel-unsafe function in a policy would keep every query of a
    bi_reader member in one process (twice the time on a large scan). Run in a parallel worker wherever PostgreSQL
    may (``debug_parallel_query``), each login still sees only its rows."""
    first, second = tenants
    relations = TENANT_TABLES | TENANT_VIEWS
    as_admin = _seen(postgres_stack.postgres_dsn(tenant_db), relations, tenants)
    in_workers = "-c debug_parallel_query=on"
    with (
        bi_login(admin, postgres_stack, "bi_reader", f"{unique}_pone") as mapped_login,
        bi_login(admin, postgres_stack, "bi_all_tenants", f"{unique}_pall") as all_login,
    ):
        login = psycopg.conninfo.conninfo_to_dict(mapped_login)["user"]
        admin.execute(
            "INSERT INTO lakehouse_meta.bi_tenant_grants (role_name, tenant_id) VALUES (%s, %s)", (login, first)
        )
        mapped, everything = (psycopg.conninfo.make_conninfo(d, options=in_workers) for d in (mapped_login, all_login))
        for dsn in (mapped, everything):
            with psycopg.connect(dsn) as conn:
                plan = conn.execute("EXPLAIN SELECT count(*) FROM serving.fct_orders_daily").fetchall()
                assert any("Gather" in line for (line,) in plan), plan
        assert _seen(mapped, relations, tenants) == {
            r: {first: c[first], second: 0, "any": c[first]} for r, c in as_admin.items()
        }
        assert _seen(everything, relations, tenants) == as_admin
