"""What tenant isolation (row-level security, ``postgres/ddl/V021__tenant_row_security.sql``) costs a BI query:
the same SQL with the same parameters, run side by side by logins of one database:

- ``owner``: the benchmark's own role, which owns the serving tables, so no policy applies (what the BI figures
  measured before tenant isolation);
- ``all_tenants``: a member of ``bi_all_tenants``, as Superset's reader is; the policy's first test is true;
- ``one_tenant``: a ``bi_reader`` login mapped to one tenant in ``lakehouse_meta.bi_tenant_grants``, a tenant's
  analyst; it runs only the queries filtered to its tenant, where it sees the owner's rows;
- ``every_tenant``: a ``bi_reader`` login mapped to every tenant, so it sees the owner's rows through the policy's
  heaviest test (``tenant_id = ANY`` of every tenant, checked row by row).

Every login has its own connection; each run's parameters go to them in turn, the order rotating from run to run,
after the same warm-up for each. Every run's rows must be the same for every login, or it raises."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from lakehouse.scripts.bench_common import latency_summary
from lakehouse.scripts.errors import BenchError

LOGINS = ("owner", "all_tenants", "one_tenant", "every_tenant")
LABELS = {
    "owner": "table owner (no policy applies)",
    "all_tenants": "member of bi_all_tenants (Superset's reader)",
    "one_tenant": "bi_reader login mapped to the queried tenant",
    "every_tenant": "bi_reader login mapped to all 100 tenants",
}
_ROLE_PREFIX = "bench_rls_"


@contextmanager
def rls_logins(admin_dsn: str, tenants: Sequence[str], own_tenant: str) -> Iterator[dict[str, str]]:
    """The DSN of each of ``LOGINS`` on ``admin_dsn``'s migrated database; the BI logins are created with random
    passwords (``one_tenant`` granted ``own_tenant``, ``every_tenant`` every one of ``tenants``) and dropped on
    exit, with their tenant grants."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    from lakehouse.postgres.roles import create_login

    groups = {"all_tenants": "bi_all_tenants", "one_tenant": "bi_reader", "every_tenant": "bi_reader"}
    grants = [(_ROLE_PREFIX + "every_tenant", tenant) for tenant in tenants] + [
        (_ROLE_PREFIX + "one_tenant", own_tenant)
    ]
    dsns = {"owner": admin_dsn}
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for login, group in groups.items():
            role, password = _ROLE_PREFIX + login, secrets.token_urlsafe(24)
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            create_login(conn, role, password, group)
            dsns[login] = make_conninfo(admin_dsn, user=role, password=password)
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO lakehouse_meta.bi_tenant_grants (role_name, tenant_id) VALUES (%s, %s)",
                grants,
            )
    try:
        yield dsns
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM lakehouse_meta.bi_tenant_grants WHERE role_name LIKE %s", (_ROLE_PREFIX + "%",))
            for login in groups:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(_ROLE_PREFIX + login)))


def side_by_side(
    dsns: dict[str, str], query: str, params: Sequence[dict[str, Any] | None], warmup: int
) -> dict[str, Any]:
    """Latency of ``query`` per login over ``params`` (the first ``warmup`` unmeasured), each run on every login in
    rotating order; with each BI login's p50 and p95 over the owner's."""
    import psycopg

    timings: dict[str, list[float]] = {login: [] for login in dsns}
    order = list(dsns)
    with ExitStack() as stack:
        conns = {login: stack.enter_context(psycopg.connect(dsn)) for login, dsn in dsns.items()}
        for run, p in enumerate(params):
            rows: dict[str, list[Any]] = {}
            for login in order[run % len(order) :] + order[: run % len(order)]:
                started = time.perf_counter()
                fetched = conns[login].execute(query, p).fetchall()
                elapsed = (time.perf_counter() - started) * 1000
                rows[login] = sorted(fetched, key=repr)  # the same rows; their order may follow another plan
                conns[login].rollback()
                if run >= warmup:
                    timings[login].append(elapsed)
            differ = sorted(login for login in rows if rows[login] != rows["owner"])
            if differ:
                raise BenchError(f"run {run} ({p}): {', '.join(differ)} got other rows than the owner")
    summaries: dict[str, Any] = {login: latency_summary(ms) for login, ms in timings.items()}
    for login in dsns:
        if login != "owner":
            for stat in ("p50_ms", "p95_ms"):
                summaries[login][f"{stat[:3]}_ratio"] = summaries[login][stat] / summaries["owner"][stat]
    return summaries


def rls_lines(title: str, per_query: dict[str, dict[str, Any]], how: str) -> list[str]:
    """A docs/benchmarks.md subsection: per query, each login's p50/p95 and its ratios to the owner's."""
    lines = [
        "",
        title,
        "",
        how,
        "",
        "| query | login | runs | p50 ms | p95 ms | p50 / owner | p95 / owner |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, logins in per_query.items():
        for login in (login for login in LOGINS if login in logins):
            s = logins[login]
            ratios = f"{s['p50_ratio']:.2f} | {s['p95_ratio']:.2f}" if login != "owner" else "1 | 1"
            lines.append(
                f"| {name} | {LABELS[login]} | {s['runs']:,} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {ratios} |"
            )
    worst = {
        login: max(logins[login]["p95_ratio"] for logins in per_query.values() if login in logins)
        for login in LOGINS[1:]
        if any(login in logins for logins in per_query.values())
    }
    lines += [
        "",
        "Largest p95 ratio to the owner's: " + "; ".join(f"{LABELS[k]} **{v:.2f}**" for k, v in worst.items()) + ".",
    ]
    return lines
