"""The BI benchmark: latency of each query of docs/bi_queries.sql over serving.fct_orders_daily filled with
``fact_rows`` rows, in five cases, each with at least ``runs`` runs per query:

- ``cold``: the PostgreSQL server restarted just before each query's runs (empty shared buffers), and the OS page
  cache dropped too when this process may (``sync; echo 3 > /proc/sys/vm/drop_caches``; whether it could is
  reported); only the first runs after the restart are cold, so the first run's time is reported on its own;
- ``warm_1_client``: after the cold runs, one client;
- ``warm_8_clients``: 8 threads, each with its own connection, running the query's runs between them at once;
- ``loader_swap``: one client while a concurrent ``load_frame`` (over Spark Connect) replaces one day's partition
  in a loop; every run of this case asks for that day, so each query reads the partition being swapped;
- ``rls`` (not in ``CASES``: it compares logins): warm, the same runs as the table owner and as two BI logins under
  tenant isolation, side by side (``bench_rls``).

Parameters (tenant, day) are drawn at random with a fixed seed per case."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from lakehouse.scripts.bench_common import bench_dsn, connect_spark, fact_frame, latency_summary, pg_settings
from lakehouse.scripts.bench_rls import rls_logins, side_by_side

TENANTS, COMBOS = 100, 4 * 4 * 8
CLIENTS = 8
FIRST_DAY = date(2024, 1, 1)
CASES = ("cold", "warm_1_client", "warm_8_clients", "loader_swap")
RLS_WARMUP = 50


def tenant_name(index: int) -> str:
    """The id of the filled tables' tenant number ``index`` (as the SQL that fills them names it)."""
    return f"tenant_{index:03d}"


ALL_TENANTS = [tenant_name(index) for index in range(TENANTS)]
RLS_TENANT = tenant_name(7)


def named_queries(path: Path) -> dict[str, str]:
    """The queries of a SQL file whose queries each follow a ``-- name: <name>`` line."""
    queries: dict[str, str] = {}
    name = None
    for line in path.read_text().splitlines():
        if line.startswith("-- name:"):
            name = line.split(":", 1)[1].strip()
            queries[name] = ""
        elif name and not line.startswith("--"):
            queries[name] += line + "\n"
    return {k: v.strip().rstrip(";") for k, v in queries.items()}


def drop_os_page_cache() -> str | None:
    """``sync; echo 3 > /proc/sys/vm/drop_caches``; None when it worked, else why not."""
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


def fill(dsn: str, fact_rows: int) -> tuple[int, int, float]:
    """serving.fct_orders_daily with about ``fact_rows`` rows (TENANTS x COMBOS a day), and its rollups as a load
    keeps them; (rows, days, seconds)."""
    import psycopg
    from psycopg import sql

    from lakehouse.config.marts import mart
    from lakehouse.postgres.loader import rollup_query

    days = max(31, fact_rows // (TENANTS * COMBOS))
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE serving.fct_orders_daily")
        conn.execute(
            "SELECT lakehouse_meta.add_day_partitions('serving.fct_orders_daily', %s, %s)",
            (FIRST_DAY, FIRST_DAY + timedelta(days=days)),
        )
        conn.execute(f"""
            INSERT INTO serving.fct_orders_daily
            SELECT 'tenant_' || lpad(t::text, 3, '0'), date '{FIRST_DAY}' + d, r, c, 'category_' || k,
                   (t + d + k) % 50, (t + k) % 5, (t * d) % 120, ((t * 37 + d * 11 + k) % 100000) / 100.0,
                   (k % 3000) / 100.0, ((t + d) % 9000) / 100.0, (t + d) % 40, ((t + d + k) % 50) / 4
            FROM generate_series(0, {TENANTS - 1}) t, generate_series(0, {days - 1}) d,
                 unnest(array['north','south','east','west']) r, unnest(array['web','mobile','pos','unknown']) c,
                 generate_series(0, 7) k""")
        conn.execute("VACUUM ANALYZE serving.fct_orders_daily")
        for rollup in mart("fct_orders_daily").rollups:
            table = sql.Identifier("serving", rollup.table)
            conn.execute(sql.SQL("TRUNCATE {}").format(table))
            facts = sql.Identifier("serving", "fct_orders_daily")
            conn.execute(sql.SQL("INSERT INTO {} {}").format(table, rollup_query(rollup, facts)))
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
        total = conn.execute("SELECT count(*) FROM serving.fct_orders_daily").fetchone()[0]  # type: ignore[index]
    if total != TENANTS * COMBOS * days:
        raise AssertionError(f"filled {total} rows, expected {TENANTS * COMBOS * days}")
    return int(total), days, time.perf_counter() - started


def _timed_runs(dsn: str, sql: str, params: list[dict[str, Any]]) -> list[float]:
    import psycopg

    timings = []
    with psycopg.connect(dsn) as conn:
        for p in params:
            t0 = time.perf_counter()
            conn.execute(sql, p).fetchall()
            timings.append((time.perf_counter() - t0) * 1000)
            conn.rollback()  # no transaction left open across runs (a swap would wait for it)
    return timings


def _concurrent_runs(dsn: str, sql: str, params: list[dict[str, Any]], clients: int) -> list[float]:
    barrier = threading.Barrier(clients)

    def client(index: int) -> list[float]:
        barrier.wait()  # every client connected and ready: they start together
        return _timed_runs(dsn, sql, params[index::clients])

    with ThreadPoolExecutor(clients) as pool:
        shares = list(pool.map(client, range(clients)))  # a client's error is raised here
    return [ms for share in shares for ms in share]


class SwapLoop:
    """A thread replacing one day of serving.fct_orders_daily with ``load_frame`` on a Spark Connect session, in a
    loop, until stopped; it records each swap's seconds."""

    def __init__(self, spark: Any, dsn: str, day: date) -> None:
        self.dsn, self.day = dsn, day
        self.frame = fact_frame(spark, TENANTS * COMBOS, day)
        self.seconds: list[float] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(1)
        self._future: Future[None] | None = None

    def _load(self) -> None:
        from lakehouse.spark.io.postgres import load_frame

        result = load_frame(
            self.frame, self.dsn, "serving.fct_orders_daily", "order_date", self.day, self.day + timedelta(days=1)
        )
        self.seconds.append(result.seconds)

    def __enter__(self) -> SwapLoop:
        """One swap in the foreground (warm-up), then the loop in its thread."""
        self._load()
        self.seconds.clear()
        self._future = self._pool.submit(self._run)
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._load()

    def __exit__(self, *_exc: object) -> None:
        """Stop after the swap in flight; a swap's error is raised here."""
        self._stop.set()
        try:
            if self._future is not None:
                self._future.result()
        finally:
            self._pool.shutdown()

    def summary(self) -> dict[str, Any]:
        """How many swaps ran while the loop did, and their seconds."""
        return {"swaps": len(self.seconds), "swap_s": latency_summary([s * 1000 for s in self.seconds])}


def bench_bi_queries(fact_rows: int, runs: int, restart: Callable[[], None], sql_file: Path) -> dict[str, Any]:
    """p50/p95/p99 of each query of ``sql_file`` per case (see the module docstring); ``restart`` restarts the
    PostgreSQL server."""
    from lakehouse.config.settings import settings

    dsn = bench_dsn(settings())
    total, days, fill_s = fill(dsn, fact_rows)
    queries = named_queries(sql_file)
    swap_day = FIRST_DAY + timedelta(days=days - 1)

    def draws(seed: int, fixed_day: date | None = None, count: int = runs) -> list[dict[str, Any]]:
        rng = random.Random(seed)
        return [
            {
                "tenant": tenant_name(rng.randrange(TENANTS)),
                "day": fixed_day or FIRST_DAY + timedelta(days=rng.randrange(30, days)),
            }
            for _ in range(count)
        ]

    cases: dict[str, dict[str, Any]] = {case: {} for case in CASES}
    cold_notes: dict[str, str | None] = {}
    for index, (name, sql) in enumerate(queries.items()):
        restart()
        cold_notes[name] = drop_os_page_cache()
        timings = _timed_runs(dsn, sql, draws(100 + index))
        cases["cold"][name] = {**latency_summary(timings), "first_run_ms": timings[0], "first_10_ms": timings[:10]}
    for index, (name, sql) in enumerate(queries.items()):
        cases["warm_1_client"][name] = latency_summary(_timed_runs(dsn, sql, draws(200 + index)))
        cases["warm_8_clients"][name] = latency_summary(_concurrent_runs(dsn, sql, draws(300 + index), CLIENTS))
    rls: dict[str, Any] = {}
    with rls_logins(dsn, ALL_TENANTS, RLS_TENANT) as logins:
        for index, (name, sql) in enumerate(queries.items()):
            # one tenant for every run, so that one_tenant sees the owner's rows; the tenants' rows are alike
            params = [{**p, "tenant": RLS_TENANT} for p in draws(600 + index, count=RLS_WARMUP) + draws(500 + index)]
            tenant_filtered = "%(tenant)s" in sql
            chosen = {login: dsn for login, dsn in logins.items() if tenant_filtered or login != "one_tenant"}
            rls[name] = side_by_side(chosen, sql, params, RLS_WARMUP)
    with connect_spark() as spark, SwapLoop(spark, dsn, swap_day) as swap:
        for index, (name, sql) in enumerate(queries.items()):
            cases["loader_swap"][name] = latency_summary(_timed_runs(dsn, sql, draws(400 + index, swap_day)))
    swaps = swap.summary()
    dropped = {note for note in cold_notes.values()}
    return {
        "fact_rows": total,
        "days": days,
        "fill_s": fill_s,
        "runs_per_query_and_case": runs,
        "clients": CLIENTS,
        "swap_day": swap_day.isoformat(),
        "os_page_cache_dropped": dropped == {None},
        "os_page_cache_note": None if dropped == {None} else sorted(n for n in dropped if n)[0],
        "loader_swaps": swaps,
        "cases": cases,
        "rls": rls,
        "rls_warmup": RLS_WARMUP,
        "rls_tenant": RLS_TENANT,
        "postgres": pg_settings(dsn),
    }
