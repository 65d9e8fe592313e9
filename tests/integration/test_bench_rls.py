"""The tenant-isolation benchmark's protocol (``lakehouse.scripts.bench_rls``) on a real PostgreSQL: its logins see
what the policy gives them, a run whose rows differ from the owner's stops the benchmark, and its logins are gone
afterwards."""

from __future__ import annotations

import psycopg
import pytest

from lakehouse.config.settings import Settings
from lakehouse.scripts.bench_rls import rls_logins, side_by_side
from lakehouse.scripts.errors import BenchError

pytestmark = pytest.mark.integration
TENANTS = ["tenant_000", "tenant_001", "tenant_002"]
PER_TENANT = "SELECT tenant_id, count(*) FROM serving.fct_orders_daily GROUP BY 1"


@pytest.fixture
def dsn(isolated_serving: Settings) -> str:
    """The isolated serving database with 4 rows of each of TENANTS on one day."""
    dsn = isolated_serving.postgres_dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT lakehouse_meta.add_day_partitions('serving.fct_orders_daily', '2024-01-01', '2024-01-02')")
        conn.execute("""
            INSERT INTO serving.fct_orders_daily
            SELECT 'tenant_00' || t, date '2024-01-01', r, 'web', 'category_1', 1, 1, 1, 10.0, 0.0, 0.0, 1, 1
            FROM generate_series(0, 2) t, unnest(array['north','south','east','west']) r""")
    return dsn


def test_each_login_sees_the_owners_rows_through_its_policy_and_is_dropped_after(dsn: str) -> None:
    with rls_logins(dsn, TENANTS, "tenant_001") as logins:
        assert set(logins) == {"owner", "all_tenants", "one_tenant", "every_tenant"}
        every = {k: v for k, v in logins.items() if k != "one_tenant"}
        summaries = side_by_side(every, PER_TENANT, [None] * 5, warmup=2)
        assert {login: s["runs"] for login, s in summaries.items()} == dict.fromkeys(every, 3)
        assert all(s["p95_ratio"] > 0 for login, s in summaries.items() if login != "owner")
        own = {k: v for k, v in logins.items() if k in ("owner", "one_tenant")}
        filtered = PER_TENANT.replace("GROUP BY", "WHERE tenant_id = %(tenant)s GROUP BY")
        side_by_side(own, filtered, [{"tenant": "tenant_001"}] * 2, warmup=0)
        with psycopg.connect(logins["one_tenant"]) as conn:
            assert conn.execute(PER_TENANT).fetchall() == [("tenant_001", 4)]
    with psycopg.connect(dsn) as conn:
        left = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'bench_rls_%'").fetchall()
        grants = conn.execute("SELECT count(*) FROM lakehouse_meta.bi_tenant_grants").fetchone()
    assert left == [] and grants == (0,)


def test_a_login_that_sees_other_rows_than_the_owner_stops_the_benchmark(dsn: str) -> None:
    # "every_tenant" is mapped to the first two tenants only
    with (
        rls_logins(dsn, TENANTS[:2], "tenant_001") as logins,
        pytest.raises(BenchError, match=r"run 0 .*every_tenant got other rows than the owner"),
    ):
        side_by_side({k: logins[k] for k in ("owner", "every_tenant")}, PER_TENANT, [None], warmup=0)
