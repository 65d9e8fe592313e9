"""The dashboards benchmark: Superset's Revenue dashboard over ``serving.fct_orders_daily`` filled with
``fact_rows`` rows (``bench_bi.fill``: 100 tenants, 128 region/channel/category combinations a day) and one day of
``serving.order_revenue_5min`` (100 tenants x 4 regions x 8 categories x 288 windows), in the benchmarks' own
stack (its PostgreSQL with the server's default durability, and its own Superset):

- ``charts``: each Revenue chart's data request, ``POST /api/v1/chart/data`` with the chart's saved query context (what
  the dashboard asks), forced past Superset's data cache, over all tenants (the dashboard as it opens) and over one
  tenant drawn at random per run (its tenant filter), then over all tenants from the cache; one unmeasured run
  first, then ``runs`` timed runs per chart and case;
- ``dashboard``: the whole dashboard in headless Chromium, from navigation to every chart drawn (no loading
  indicator left), logged in once, one unmeasured render first, then ``renders`` timed renders forced past the
  cache (``?force=true``) taking turns with ``renders`` from it;
- ``rls``: what tenant isolation costs the charts: each chart's SQL as Superset sends it (``result_type: query``),
  over all tenants and over one, run in PostgreSQL as the table owner and as two BI logins under row-level
  security, side by side (``bench_rls``), ``RLS_WARMUP`` unmeasured runs and then ``runs`` per login.

Targets (issue 18): p95 <= 1 s per chart, and <= 3 s for the whole dashboard."""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta
from typing import Any

from lakehouse.config.settings import Settings
from lakehouse.scripts.bench_bi import ALL_TENANTS, FIRST_DAY, TENANTS, fill, tenant_name
from lakehouse.scripts.bench_common import latency_summary
from lakehouse.scripts.bench_rls import rls_lines, rls_logins, side_by_side
from lakehouse.scripts.errors import BenchError

DASHBOARD = "Revenue"
CHART_TARGET_MS, DASHBOARD_TARGET_MS = 1000.0, 3000.0
REGIONS, CATEGORIES, WINDOWS = 4, 8, 288
RLS_WARMUP = 5
CACHED = "all_tenants_cached"


def fill_windows(dsn: str) -> int:
    """One day (the first of the fact table) of ``serving.order_revenue_5min``; its row count."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE serving.order_revenue_5min")
        conn.execute(
            "SELECT lakehouse_meta.add_day_partitions('serving.order_revenue_5min', %s, %s)",
            (FIRST_DAY, FIRST_DAY + timedelta(days=1)),
        )
        conn.execute(f"""
            INSERT INTO serving.order_revenue_5min (tenant_id, window_date, window_start, window_end, region,
                product_category, orders_placed, units_sold, total_revenue, avg_order_value, unique_customers)
            SELECT 'tenant_' || lpad(t::text, 3, '0'), date '{FIRST_DAY}',
                   timestamptz '{FIRST_DAY} 00:00+00' + w * interval '5 minutes',
                   timestamptz '{FIRST_DAY} 00:05+00' + w * interval '5 minutes',
                   (array['north','south','east','west'])[r], 'category_' || k, 1 + (t + w) % 5, 1 + (t + k) % 9,
                   ((t * 31 + w * 7 + k) % 10000) / 100.0, ((t + w) % 5000) / 100.0, 1 + (t + r) % 4
            FROM generate_series(0, {TENANTS - 1}) t, generate_series(0, {WINDOWS - 1}) w,
                 generate_series(1, {REGIONS}) r, generate_series(0, {CATEGORIES - 1}) k""")
        conn.execute("VACUUM ANALYZE serving.order_revenue_5min")
        total = conn.execute("SELECT count(*) FROM serving.order_revenue_5min").fetchone()
    rows = int(total[0]) if total else 0
    if rows != TENANTS * WINDOWS * REGIONS * CATEGORIES:
        raise BenchError(f"filled {rows} 5-minute rows, expected {TENANTS * WINDOWS * REGIONS * CATEGORIES}")
    return rows


def bench_dashboards(settings: Settings, fact_rows: int, runs: int, renders: int) -> dict[str, Any]:
    """Per-chart request latency and whole-dashboard render time of the Revenue dashboard (module docstring)."""
    from lakehouse.scripts.superset_browser import bundle_dashboards
    from lakehouse.scripts.superset_server import SupersetServer

    dsn = settings.postgres_dsn()
    facts, days, fill_s = fill(dsn, fact_rows)
    windows = fill_windows(dsn)
    server = SupersetServer(settings)
    api = server.admin_api()
    dashboard_uuid = bundle_dashboards(server.dashboards_dir)[DASHBOARD]
    dashboard_id = api.dashboards_by_uuid([dashboard_uuid])[dashboard_uuid]
    charts = api.request("GET", f"/api/v1/dashboard/{dashboard_id}/charts")["result"]
    rng = random.Random(18)

    def context_of(saved: str, tenant: str | None, force: bool = True) -> dict[str, Any]:
        context = json.loads(saved)
        context["force"] = force
        for query in context["queries"]:
            if tenant is not None:
                query["filters"] = [*query["filters"], {"col": "tenant_id", "op": "==", "val": tenant}]
        return context

    def sql_of(name: str, saved: str, tenant: str | None) -> str:
        answer = api.request("POST", "/api/v1/chart/data", {**context_of(saved, tenant), "result_type": "query"})
        if len(answer["result"]) != 1 or "query" not in answer["result"][0]:
            raise BenchError(f"chart {name!r}: Superset gave no single SQL query: {answer['result']}")
        return str(answer["result"][0]["query"])

    def request(name: str, saved: str, tenant: str | None, force: bool = True) -> float:
        context = context_of(saved, tenant, force)
        started = time.perf_counter()
        answer = api.request("POST", "/api/v1/chart/data", context)
        elapsed = (time.perf_counter() - started) * 1000
        if answer["result"][0].get("status") != "success" or not answer["result"][0]["data"]:
            raise BenchError(f"chart {name!r} answered no data: {answer['result'][0].get('error')}")
        return elapsed

    per_chart: dict[str, dict[str, Any]] = {}
    saved_contexts: dict[str, str] = {}
    for chart in charts:
        saved = api.request("GET", f"/api/v1/chart/{chart['id']}")["result"]["query_context"]  # once per chart
        all_tenants = [None] * (runs + 1)
        one_tenant = [tenant_name(rng.randrange(TENANTS)) for _ in range(runs + 1)]
        cases: dict[str, Any] = {}
        for case, tenants in (("all_tenants", all_tenants), ("one_tenant", one_tenant)):
            timings = [request(chart["slice_name"], saved, tenant) for tenant in tenants]
            cases[case] = latency_summary(timings[1:])  # the first run is the warm-up
        # not forced: the warm-up run fills the data cache, the timed runs read it
        timings = [request(chart["slice_name"], saved, None, force=False) for _ in all_tenants]
        cases[CACHED] = latency_summary(timings[1:])
        per_chart[chart["slice_name"]] = cases
        saved_contexts[chart["slice_name"]] = saved

    rls_tenant = tenant_name(rng.randrange(TENANTS))
    chart_sql = {
        (name, tenant): sql_of(name, saved, tenant)
        for name, saved in saved_contexts.items()
        for tenant in (None, rls_tenant)
    }

    rls: dict[str, Any] = {}
    with rls_logins(dsn, ALL_TENANTS, rls_tenant) as logins:
        for (chart_name, tenant), sql in chart_sql.items():
            chosen = {login: dsn for login, dsn in logins.items() if tenant or login != "one_tenant"}
            case = "one tenant" if tenant else "all tenants"
            rls[f"{chart_name}, {case}"] = side_by_side(chosen, sql, [None] * (RLS_WARMUP + runs), RLS_WARMUP)

    with server.admin_browser() as browser:
        browser.render(dashboard_id, force=True)  # warm-up
        # forced and cached renders take turns: each forced one queries the database and refills the cache
        shown = [browser.render(dashboard_id, force=force) for _ in range(renders) for force in (True, False)]
    errors = {name: error for render in shown for name, error in render.errors.items()}
    if errors:
        raise BenchError(f"the {DASHBOARD} dashboard showed errors: {errors}")
    worst_chart_p95 = max(case["p95_ms"] for cases in per_chart.values() for case in cases.values())
    dashboard = latency_summary([render.seconds * 1000 for render in shown[0::2]])
    cached = latency_summary([render.seconds * 1000 for render in shown[1::2]])
    return {
        "dashboard": DASHBOARD,
        "fact_rows": facts,
        "days": days,
        "window_rows": windows,
        "fill_s": fill_s,
        "runs_per_chart_and_case": runs,
        "charts": per_chart,
        "render": {**dashboard, "charts_drawn": len(shown[-1].charts)},
        "render_cached": cached,
        "data_cache_seconds": server.config.data_cache_seconds,
        "rls": rls,
        "targets": {
            "chart_p95_ms": CHART_TARGET_MS,
            "dashboard_p95_ms": DASHBOARD_TARGET_MS,
            "chart_met": worst_chart_p95 <= CHART_TARGET_MS,
            "dashboard_met": dashboard["p95_ms"] <= DASHBOARD_TARGET_MS,
            "dashboard_cached_met": cached["p95_ms"] <= DASHBOARD_TARGET_MS,
        },
    }


def dashboards_section(entry: dict[str, Any] | None, run_line: Any) -> list[str]:
    """The docs/benchmarks.md section of the dashboards benchmark."""
    if entry is None:
        return []
    result = entry["result"]
    targets = result["targets"]
    seconds = result.get("data_cache_seconds")
    cache = (
        "no data cache (Superset's default `NullCache`), and every chart request forced past it"
        if not seconds
        else f"Superset's data cache on disk ({seconds} s): the cases marked forced ask past it (`force`, as a "
        "dashboard's auto-refresh does), the cached ones read what the warm-up left there"
    )
    lines = [
        "",
        "## Dashboards: Superset's Revenue dashboard over 10M fact rows",
        "",
        run_line(entry["run"]),
        "",
        f"`serving.fct_orders_daily` with {result['fact_rows']:,} rows ({result['days']} days) and "
        f"`serving.order_revenue_5min` with {result['window_rows']:,} rows (one day); the benchmarks' own Superset "
        f"and PostgreSQL (default durability); {cache}. Per chart: `POST /api/v1/chart/data` with its saved query "
        f"context, {result['runs_per_chart_and_case']} runs per case after one warm-up. Whole dashboard: headless "
        "Chromium, navigation until every chart is drawn, after one warm-up render. Code: "
        "`lakehouse.scripts.bench_dashboards`.",
        "",
        "| chart | case | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    forced = ", forced" if seconds else ""
    labels = {"all_tenants": f"all tenants{forced}", "one_tenant": f"one tenant{forced}", CACHED: "all tenants, cached"}

    def row(name: str, case: str, s: dict[str, Any]) -> str:
        return f"| {name} | {case} | {s['p50_ms']:.0f} | {s['p95_ms']:.0f} | {s['p99_ms']:.0f} | {s['max_ms']:.0f} |"

    for name, cases in result["charts"].items():
        lines += [row(name, labels.get(case, case), s) for case, s in cases.items()]
    render = result["render"]
    whole = f"whole dashboard ({render['charts_drawn']} charts), in Chromium"
    lines.append(row(whole, labels["all_tenants"], render))
    if "render_cached" in result:
        lines.append(row(whole, labels[CACHED], result["render_cached"]))
    verdict = {True: "met", False: "not met"}
    dashboard = f"**{verdict[targets['dashboard_met']]}**"
    if "dashboard_cached_met" in targets:
        dashboard = f"{dashboard} forced, **{verdict[targets['dashboard_cached_met']]}** cached"
    lines += [
        "",
        f"Targets: p95 <= {targets['chart_p95_ms']:.0f} ms per chart: **{verdict[targets['chart_met']]}**; "
        f"p95 <= {targets['dashboard_p95_ms']:.0f} ms for the whole dashboard: {dashboard}.",
    ]
    if "rls" in result:
        lines += rls_lines(
            "### What tenant isolation costs the charts' SQL",
            result["rls"],
            "Each chart's SQL as Superset sends it (`result_type: query`; one tenant: the tenant filter set to one "
            f"tenant), run in PostgreSQL with no Superset in between, {RLS_WARMUP} unmeasured runs then "
            f"{result['runs_per_chart_and_case']} per login. The logins take turns on every run, the order "
            "rotating, each on its own connection, and every run's rows must match the owner's "
            "(`lakehouse.scripts.bench_rls`); the login mapped to one tenant runs only the SQL filtered to its "
            "tenant. Superset's reader is the second login: the chart times above include the policy.",
        )
    return lines
