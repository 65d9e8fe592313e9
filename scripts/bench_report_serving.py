"""The sections of docs/benchmarks.md for the loader, BI and incremental Gold benchmarks
(``lakehouse.scripts.bench_loader``, ``bench_bi``, ``bench_incremental``). Each section says what every case
measured and the PostgreSQL settings the run read from the server with ``SHOW``; a result recorded with an earlier
protocol is not shown (it stays in docs/benchmarks.json) and the section says how to measure it again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lakehouse.scripts.bench_rls import rls_lines

RunLine = Callable[[dict[str, Any]], str]
INCREMENTAL_TARGET = 0.10  # one day's build over the 30-day rebuild's
BI_TARGET_P95_MS = 50.0
LOADER_LABELS = {
    "copy_loader": "binary COPY into a staged day partition + swap (lakehouse `load_frame`)",
    "to_sql": "`toPandas()` + pandas `to_sql` (SQLAlchemy, psycopg2, INSERTs, chunksize 10000)",
    "to_sql_copy": "`toPandas()` + pandas `to_sql` with the pandas docs' COPY `method=` (psycopg2 `copy_expert`)",
}
BI_CASES = {
    "cold": "cold: server restarted before the query's runs (empty shared buffers)",
    "warm_1_client": "warm, 1 client",
    "warm_8_clients": "warm, 8 concurrent clients (threads, a connection each)",
    "loader_swap": "1 client during a loader swap of the queried day, in a loop",
}


def postgres_line(settings: dict[str, str] | None) -> str:
    """The PostgreSQL settings a result was measured with, as one sentence."""
    if not settings:
        return "PostgreSQL settings: not recorded."
    return "PostgreSQL settings during the run (`SHOW`): " + ", ".join(f"{k}={v}" for k, v in settings.items()) + "."


def _not_measured(title: str, command: str) -> list[str]:
    return [title, "", f"Not measured with this protocol yet: `{command}`.", ""]


def loader_section(entry: dict[str, Any] | None, run_line: RunLine) -> list[str]:
    """The loader section: medians, rows/s, both baselines' ratios and every raw time."""
    title = "## PostgreSQL loader"
    result = entry["result"] if entry else None
    if not result or "median_s" not in result:
        return _not_measured(title, "python -m lakehouse.scripts.bench loader")
    rows, med = result["rows"], result["median_s"]
    raw = result["raw_s"]
    return [
        title,
        "",
        run_line(entry["run"]) if entry else "",
        "",
        postgres_line(result.get("postgres")),
        "",
        "| side | rows | median s | rows/s | raw s (in run order) | untimed first run s |",
        "|---|---|---|---|---|---|",
        *[
            f"| {label} | {rows:,} | {med[name]:.2f} | {result['rows_per_s'][name]:,.0f} | "
            f"{', '.join(f'{s:.2f}' for s in raw[name])} | {result['untimed_s'][name]:.2f} |"
            for name, label in LOADER_LABELS.items()
        ],
        "",
        f"COPY loader against `to_sql` (INSERTs): **{result['ratio_to_sql']:.1f}x**; against `to_sql` with COPY: "
        f"**{result['ratio_to_sql_copy']:.1f}x** (target: 20x over `to_sql`, and 300,000 rows/s).",
        "",
        f"What each side measured: the synthetic fact rows are written once to a Gold Delta table "
        f"({result['gold_write_s']:.1f} s, not timed); every side reads that table over the Spark Connect server and "
        "loads one day into an empty day of the same DDL (partitioned by day, same primary key and indexes), so the "
        "pandas sides' times include `toPandas()`, and the loader's includes creating, indexing and dropping its "
        "staging table and the swap. After each load the target's row count and sum of units are checked against "
        f"values computed in closed form. One untimed run of each side, then the sides alternate {result['repeats']} "
        "times (copy loader, to_sql, to_sql with COPY, ...); medians of the alternated runs.",
        "",
    ]


def bi_section(entry: dict[str, Any] | None, run_line: RunLine) -> list[str]:
    """The BI section: p50/p95/p99 per query per case, the page cache note and the swaps."""
    result = entry["result"] if entry else None
    if not result or "cases" not in result:
        return _not_measured("## BI queries", "python -m lakehouse.scripts.bench bi")
    cache = (
        "the OS page cache was dropped too (`sync; echo 3 > /proc/sys/vm/drop_caches`)"
        if result["os_page_cache_dropped"]
        else f"the OS page cache could not be dropped ({result['os_page_cache_note']}), so only PostgreSQL's shared "
        "buffers were cold: table and index pages still came from the OS cache"
    )
    swaps = result["loader_swaps"]
    lines = [
        f"## BI queries over {result['fact_rows']:,} fact rows",
        "",
        run_line(entry["run"]) if entry else "",
        "",
        postgres_line(result.get("postgres")),
        "",
        "| query (docs/bi_queries.sql) | case | runs | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, label in BI_CASES.items():
        for name, q in result["cases"][case].items():
            lines.append(
                f"| {name} | {label} | {q['runs']:,} | {q['p50_ms']:.1f} | {q['p95_ms']:.1f} | {q['p99_ms']:.1f} | "
                f"{q['max_ms']:.1f} |"
            )
    cold_first = ", ".join(f"{name} {q['first_run_ms']:.1f} ms" for name, q in result["cases"]["cold"].items())
    lines += [
        "",
        f"Target: p95 <= {BI_TARGET_P95_MS:.0f} ms. Fill: {result['days']} days x 100 tenants x 128 groups "
        f"({result['fill_s']:.0f} s, INSERT ... SELECT, then VACUUM ANALYZE). Each case runs every query "
        f"{result['runs_per_query_and_case']:,} times with random tenant and day (a fixed seed per case and query); "
        "times are client-side, from sending the query to the last row fetched.",
        "",
        f"- cold: the PostgreSQL server was restarted before each query's runs; {cache}. Only the first runs after "
        f"a restart are cold, so their percentiles are mostly warm; the first run after each restart: {cold_first}.",
        f"- warm, 8 clients: {result['clients']} threads, each with its own connection, start together and share "
        "the query's runs; each run's latency is counted.",
        f"- loader swap: a `load_frame` over Spark Connect replaced day {result['swap_day']} "
        f"({swaps['swaps']} swaps while the queries ran, median {swaps['swap_s']['p50_ms'] / 1000:.1f} s each) "
        "and every run asked for that day.",
        "",
    ]
    if "rls" in result:
        lines += rls_lines(
            "### What tenant isolation costs these queries",
            result["rls"],
            f"Warm, one connection per login: every query's {result['runs_per_query_and_case']:,} runs (random day, "
            f"tenant {result['rls_tenant']}, a fixed seed) go to the logins in turn, the order rotating, after the "
            f"same {result['rls_warmup']} unmeasured runs each; every run's rows must match the owner's. The login "
            "mapped to one tenant runs only the queries filtered to its tenant (`lakehouse.scripts.bench_rls`). "
            "The table above ran as the owner.",
        )
        lines.append("")
    return lines


def _silver_cell(run: dict[str, Any]) -> str:
    silver = run.get("silver", {})
    if "stream_s" in silver:
        return f"stream ({silver['produce_s']:.0f} s producing + {silver['stream_s']:.0f} s streaming)"
    estimate = silver.get("estimated_produce_and_stream_s")
    return f"bulk write (stream estimated at {estimate:.0f} s > {silver.get('budget_s', 0):.0f} s budget)"


def incremental_section(entry: dict[str, Any] | None, run_line: RunLine) -> list[str]:
    """The incremental Gold section: ratio per daily volume, and which Silver each volume used."""
    title = "## Gold: incremental day vs full rebuild (fct_orders_daily)"
    runs = entry["result"] if entry else None
    if not runs or any("silver" not in run for run in runs):
        return _not_measured(title, "python -m lakehouse.scripts.bench incremental")
    lines = [
        title,
        "",
        run_line(entry["run"]) if entry else "",
        "",
        "| events/day | Silver written by | Silver rows | files | one day s | 30 days s | ratio | target <= 10% |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {run['events_per_day']:,} | {_silver_cell(run)} | {run['silver_rows']:,} | {run['silver']['files']:,} "
            f"| {run['incremental_1_day_s']:.2f} | {run['full_30_days_s']:.2f} | **{run['ratio'] * 100:.0f}%** | "
            f"{'met' if run['ratio'] <= INCREMENTAL_TARGET else 'not met'} |"
            for run in runs
        ],
        "",
    ]
    for run in runs:
        silver = run["silver"]
        if "stream_s" in silver:
            lines.append(
                f"- {run['events_per_day']:,} events/day: Silver written by the real stream "
                f"(`lakehouse stream --event-type orders --available-now`) from {silver['produced']['messages']:,} "
                "messages produced to Kafka over 30 days (1% late events, 2 hours to 3 days older than the rest; 2% "
                f"duplicates; 1% malformed and 1% contract-invalid; placed, cancelled and updated orders), so "
                f"{silver['rows']:,} Silver rows on {silver['days_with_rows']} days (late events reach up to 3 days "
                f"before the first) in {silver['files']:,} files from {silver.get('commits', '?')} table versions: "
                f"{silver['s_per_event'] * 1e6:.0f} us per event producing + streaming."
            )
        else:
            lines.append(
                f"- {run['events_per_day']:,} events/day: Silver **bulk-written** by one Spark write (exactly that "
                "many placed or cancelled orders each day, no late events, not the stream's file layout), because "
                "producing and "
                f"streaming it was estimated at {silver['estimated_produce_and_stream_s']:.0f} s from the smaller "
                f"volume's time per event, over the {silver['budget_s']:.0f} s budget."
            )
    lines += [
        "",
        "Median of 3 builds each (raw times in docs/benchmarks.json), in one Spark session after a warm-up build. "
        "Checked: the day's placed + cancelled orders in Gold equal those computed from the Kafka messages "
        "(streamed Silver) or the generated volume (bulk Silver). A build also pays a fixed cost of about a second "
        "whatever its interval (Delta snapshot and file-filtering jobs, planning, the commit, the JVM's JIT), so the "
        "ratio falls as the daily volume grows. docs/timings.md says where that fixed cost goes.",
        "",
    ]
    return lines
