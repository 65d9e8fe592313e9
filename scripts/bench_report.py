"""docs/benchmarks.md (and docs/benchmarks.json) from the results of one ``make bench`` run
(``lakehouse.scripts.bench``), with the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
INCREMENTAL_TARGET = 0.10  # one day's build over the 30-day rebuild's


def machine() -> str:
    """One line describing the machine."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = (
        int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
        )
        // 1024
        // 1024
    )
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, {platform.system()} {platform.release()}"


def write_report(results: dict[str, Any], command: str) -> Path:
    """Write docs/benchmarks.md from the results of this run."""
    out = ROOT / "docs" / "benchmarks.md"
    s, loader, bi, inc = (results.get(k) for k in ("streaming", "loader", "bi", "incremental"))
    lines = [
        "# Benchmarks",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"Command: `{command}` (all numbers below come from that one run; raw results in "
        "`docs/benchmarks.json`). The machine is shared and noisy: compare the ratios measured side by side, "
        "not absolute numbers across runs.",
        "",
    ]
    if s:
        lines += [
            "## Streaming (Kafka -> Bronze -> Silver, orders, Spark local[2])",
            "",
            "| metric | value | target |",
            "|---|---|---|",
            f"| produce (confluent-kafka, idempotent, acks=all) | {s['produce_events_per_s']:,.0f} events/s | |",
            f"| Kafka -> Bronze + Silver, one query, time inside its {s['pipeline_batches']} micro-batches | "
            f"{s['pipeline_events_per_s']:,.0f} events/s | 50,000 events/s sustained |",
            f"| produce -> Silver freshness p50 / p95 / max at {s['freshness_rate']} events/s | "
            f"{s['freshness_p50_s']:.1f} s / {s['freshness_p95_s']:.1f} s / {s['freshness_max_s']:.1f} s "
            f"({s['freshness_events']} events) | p95 <= 5 s |",
            "",
            f"Throughput is measured over a backlog of {s['events']:,} orders processed with `--available-now` "
            "(time inside the micro-batches, from the audit table). Freshness is Silver `_processed_at` minus the "
            "Kafka timestamp, for events produced at a steady rate into the continuously running pipeline "
            "(1 s trigger). Both flatter the pipeline (time between micro-batches left out; freshness stamped before "
            "the commit); issue 15 replaces them with a sustained-rate and commit-time freshness protocol.",
            "",
        ]
    if loader:
        lines += [
            "## PostgreSQL loader",
            "",
            "| loader | rows | seconds | rows/s |",
            "|---|---|---|---|",
            f"| binary COPY into a staged day partition + swap (lakehouse) | {loader['rows']:,} | "
            f"{loader['copy_loader_s']:.2f} | {loader['copy_rows_per_s']:,.0f} |",
            f"| the same, first load of a new Spark session | {loader['rows']:,} | "
            f"{loader['first_load_s']:.2f} | {loader['rows'] / loader['first_load_s']:,.0f} |",
            f"| the same, replacing the day's loaded partition (a rerun) | {loader['rows']:,} | "
            f"{loader['replace_s']:.2f} | {loader['rows'] / loader['replace_s']:,.0f} |",
            f"| pandas `to_sql` (SQLAlchemy, psycopg2, chunksize 10000) | {loader['rows']:,} | "
            f"{loader['to_sql_s']:.2f} | {loader['to_sql_rows_per_s']:,.0f} |",
            "",
            f"Speed-up: **{loader['speedup']:.1f}x** (target: 20x and 300,000 rows/s). Same rows into the same DDL "
            "(partitioned by day, primary key), both into an empty day. The loader's time is the median of five "
            f"loads after {loader['warmup_loads']} warm-up loads in the same session: the steady state of the "
            "long-running Spark Connect server that runs the Gold tasks, with Python workers started and the "
            "JVM's JIT done compiling (a new session's first load, in the second row, pays for both). It "
            "includes creating, indexing and dropping the staging table.",
            "",
        ]
    if bi:
        lines += [
            f"## BI queries over {bi['fact_rows']:,} fact rows",
            "",
            "| query (docs/bi_queries.sql) | p50 ms | p95 ms |",
            "|---|---|---|",
            *[f"| {name} | {q['p50_ms']:.1f} | {q['p95_ms']:.1f} |" for name, q in bi["queries"].items()],
            "",
            "Target: p95 <= 50 ms.",
            "",
        ]
    if inc:
        lines += [
            "## Gold: incremental day vs full rebuild (fct_orders_daily)",
            "",
            "| Silver orders (30 days) | orders/day | one day s | 30 days s | ratio | target <= 10% |",
            "|---|---|---|---|---|---|",
            *[
                f"| {run['silver_rows']:,} | {run['events_per_day']:,} | {run['incremental_1_day_s']:.2f} | "
                f"{run['full_30_days_s']:.2f} | **{run['ratio'] * 100:.0f}%** | "
                f"{'met' if run['ratio'] <= INCREMENTAL_TARGET else 'not met'} |"
                for run in inc
            ],
            "",
            "Median of 3 builds each, in one Spark session after a warm-up build. The target applies at the scale "
            "the BI benchmark uses (about 10M fact rows): 400,000 orders a day, 12M Silver orders over the 30 days. "
            "A build also pays a fixed cost of about a second whatever its interval (Delta snapshot and "
            "file-filtering jobs, planning, the commit, the JVM's JIT still compiling), so the ratio falls as the "
            "daily volume grows: at the smaller volume, where the 30 days take only a few seconds, the fixed cost "
            "is most of a one-day build. docs/timings.md says where that fixed cost goes and what was tried.",
            "",
        ]
    out.write_text("\n".join(lines))
    (ROOT / "docs" / "benchmarks.json").write_text(json.dumps(results, indent=2, default=str))
    return out
