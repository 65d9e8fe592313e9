"""``make bench``: the numbers in docs/benchmarks.md, measured on this machine.

1. stream: the streaming path under a sustained open-loop load (``lakehouse.scripts.bench_stream``): the highest
   sustained rate, produce -> Silver freshness at fractions of it, correctness gates, per-row ceiling;
2. loader: the COPY loader against pandas ``to_sql`` on the same rows and DDL;
3. bi: p50/p95 latency of docs/bi_queries.sql over a fact table of 10M rows;
4. incremental: Gold, an incremental one-day build against a 30-day full rebuild, at two daily volumes.

    python -m lakehouse.scripts.bench                       # everything, the full protocol (make bench)
    python -m lakehouse.scripts.bench stream --steps 2000,5000 --step-seconds 40 --prefill-rows 100000

Runs its own stack (``lakehouse.scripts.bench_env``) so a demo stack can stay up. Each run records itself (commit,
config hash, cores, CPU steal, PostgreSQL durability) beside its results; a benchmark run alone replaces only its
own section of docs/benchmarks.md. Exits 1 when a correctness gate of the streaming benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from lakehouse.scripts.bench_env import BENCH_ENV, ROOT, bench_home, isolated_config, use
from lakehouse.scripts.bench_report import write_report

__all__ = ["BENCH_ENV", "ROOT", "main", "named_queries"]
BENCHMARKS = ("stream", "loader", "bi", "incremental")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _bench_dsn(env: Any) -> str:
    import psycopg

    from lakehouse.postgres.migrate import migrate
    from lakehouse.scripts.postgres_server import ensure_database

    with psycopg.connect(env.postgres_dsn("postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS lakehouse_bench WITH (FORCE)")
    ensure_database(env.postgres_dsn("postgres"), "lakehouse_bench")
    dsn = env.postgres_dsn("lakehouse_bench")
    migrate(dsn)
    return dsn


def _fact_frame(spark: Any, rows: int, day: date) -> Any:
    return spark.range(rows).selectExpr(
        "concat('tenant_', lpad(cast(id % 97 AS string), 3, '0')) AS tenant_id",
        f"date'{day.isoformat()}' AS order_date",
        "element_at(array('north','south','east','west'), cast(id % 4 AS int) + 1) AS region",
        "element_at(array('web','mobile','pos','unknown'), cast((id div 4) % 4 AS int) + 1) AS channel",
        "concat('category_', cast(id div 16 AS string)) AS product_category",
        "id % 50 AS orders_placed",
        "id % 7 AS orders_cancelled",
        "id % 120 AS units",
        "cast(id % 100000 / 100.0 AS decimal(18,2)) AS gross_revenue",
        "cast(id % 3000 / 100.0 AS decimal(18,2)) AS cancelled_revenue",
        "cast(id % 9000 / 100.0 AS decimal(18,2)) AS avg_order_value",
        "id % 40 AS unique_customers",
    )


# loads before the timed ones: the JVM's JIT keeps compiling the loader's code paths for about ten loads
# (0.3 s of compiler CPU in the third load, 0.1 s in the 25th), as a long-running Spark Connect server has done
LOADER_WARMUP_LOADS = 10


def bench_loader(rows: int) -> dict[str, Any]:
    """COPY loader vs pandas to_sql, same rows, same DDL."""
    import psycopg
    from sqlalchemy import create_engine

    from lakehouse.config.settings import settings
    from lakehouse.spark.io.postgres import load_frame
    from lakehouse.spark.session import get_spark

    env = settings()
    dsn = _bench_dsn(env)
    spark = get_spark("bench", own_driver=True)
    day = date(2026, 1, 1)
    frame = _fact_frame(spark, rows, day).persist()
    frame.count()
    table, next_day = "serving.fct_orders_daily", day + timedelta(days=1)

    def load_into_empty_day() -> float:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}_p{day:%Y%m%d}")
        return load_frame(frame, dsn, table, "order_date", day, next_day).seconds

    first_s = load_into_empty_day()  # starts the Python workers and imports; the JIT compiles
    for _ in range(LOADER_WARMUP_LOADS - 1):
        load_into_empty_day()
    copy_s = statistics.median([load_into_empty_day() for _ in range(5)])
    replace_s = load_frame(frame, dsn, table, "order_date", day, next_day).seconds
    pdf = frame.toPandas()  # the baseline needs the rows in pandas; not part of the timed section
    with psycopg.connect(dsn, autocommit=True) as conn:
        # the same DDL: partitioned by day, the day's partition there, the same primary key and indexes
        conn.execute(
            "CREATE TABLE serving.fct_orders_daily_to_sql (LIKE serving.fct_orders_daily INCLUDING ALL) "
            "PARTITION BY RANGE (order_date)"
        )
        conn.execute(
            "SELECT lakehouse_meta.add_day_partitions('serving.fct_orders_daily_to_sql', %s, %s)", (day, next_day)
        )
    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg2://", 1))
    started = time.perf_counter()
    pdf.to_sql("fct_orders_daily_to_sql", engine, schema="serving", if_exists="append", index=False, chunksize=10_000)
    to_sql_s = time.perf_counter() - started
    with psycopg.connect(dsn) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM serving.fct_orders_daily), "
            "(SELECT count(*) FROM serving.fct_orders_daily_to_sql)"
        ).fetchone()
    assert counts == (rows, rows), counts
    frame.unpersist()
    return {
        "rows": rows,
        "first_load_s": first_s,
        "warmup_loads": LOADER_WARMUP_LOADS,
        "copy_loader_s": copy_s,
        "copy_rows_per_s": rows / copy_s,
        "replace_s": replace_s,
        "to_sql_s": to_sql_s,
        "to_sql_rows_per_s": rows / to_sql_s,
        "speedup": to_sql_s / copy_s,
    }


def bench_bi_queries(fact_rows: int, runs: int) -> dict[str, Any]:
    """p50/p95 of each BI query in docs/bi_queries.sql over ``fact_rows`` rows."""
    import psycopg

    from lakehouse.config.settings import settings

    dsn = _bench_dsn(settings())
    tenants, combos = 100, 4 * 4 * 8
    days = max(1, fact_rows // (tenants * combos))
    first = date(2024, 1, 1)
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE serving.fct_orders_daily")
        conn.execute(
            "SELECT lakehouse_meta.add_day_partitions('serving.fct_orders_daily', %s, %s)",
            (first, first + timedelta(days=days)),
        )
        conn.execute(f"""
            INSERT INTO serving.fct_orders_daily
            SELECT 'tenant_' || lpad(t::text, 3, '0'), date '{first}' + d, r, c, 'category_' || k,
                   (t + d + k) % 50, (t + k) % 5, (t * d) % 120, ((t * 37 + d * 11 + k) % 100000) / 100.0,
                   (k % 3000) / 100.0, ((t + d) % 9000) / 100.0, (t + d) % 40
            FROM generate_series(0, {tenants - 1}) t, generate_series(0, {days - 1}) d,
                 unnest(array['north','south','east','west']) r, unnest(array['web','mobile','pos','unknown']) c,
                 generate_series(0, 7) k""")
        conn.execute("VACUUM ANALYZE serving.fct_orders_daily")
        total = conn.execute("SELECT count(*) FROM serving.fct_orders_daily").fetchone()[0]  # type: ignore[index]
    fill_s = time.perf_counter() - started
    queries = named_queries(ROOT / "docs" / "bi_queries.sql")
    rng = random.Random(3)
    result: dict[str, Any] = {"fact_rows": total, "fill_s": fill_s, "queries": {}}
    with psycopg.connect(dsn) as conn:
        for name, sql in queries.items():
            timings = []
            for _ in range(runs):
                params = {
                    "tenant": f"tenant_{rng.randrange(tenants):03d}",
                    "day": first + timedelta(days=rng.randrange(30, days)),
                }
                t0 = time.perf_counter()
                conn.execute(sql, params).fetchall()
                timings.append((time.perf_counter() - t0) * 1000)
            result["queries"][name] = {"p50_ms": statistics.median(timings), "p95_ms": _percentile(timings, 0.95)}
    return result


def named_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    name = None
    for line in path.read_text().splitlines():
        if line.startswith("-- name:"):
            name = line.split(":", 1)[1].strip()
            queries[name] = ""
        elif name and not line.startswith("--"):
            queries[name] += line + "\n"
    return {k: v.strip().rstrip(";") for k, v in queries.items()}


def write_silver_orders(spark: Any, path: str, events_per_day: int, first: date, days: int) -> None:
    """A Silver orders table with exactly ``events_per_day`` orders on each of ``days`` days from ``first``,
    spread over 5 tenants, 5,000 customers, 120 products, 4 regions and 3 channels (10% cancellations)."""
    from pyspark.sql import functions as F

    # id % days picks the day; k = id div days, independent of the day, picks everything else
    spark.range(events_per_day * days).selectExpr("id", f"id div {days} AS k").selectExpr(
        "uuid() AS event_id",
        "CASE WHEN k % 10 = 0 THEN 'ORDER_CANCELLED' ELSE 'ORDER_PLACED' END AS event_type",
        "CAST(2 AS bigint) AS schema_version",
        "concat('tenant_0', cast(k % 5 + 1 AS string)) AS tenant_id",
        f"timestamp'{first.isoformat()} 00:00:00' + make_interval(0, 0, 0, cast(id % {days} AS int), 0, 0, "
        "cast(k % 86400 AS decimal(18,6))) AS event_timestamp",
        "concat('O', cast(id AS string)) AS order_id",
        "concat('C', cast(k % 5000 AS string)) AS customer_id",
        "concat('P', lpad(cast(k % 120 + 1 AS string), 4, '0')) AS product_id",
        "k % 5 + 1 AS quantity",
        "cast(10.5 AS decimal(12,2)) AS unit_price",
        "cast((k % 5 + 1) * 10.5 AS decimal(14,2)) AS total_price",
        "'USD' AS currency",
        "element_at(array('north','south','east','west'), cast(k % 4 AS int) + 1) AS region",
        "element_at(array('web','mobile','pos'), cast(k % 3 AS int) + 1) AS channel",
        "CAST(NULL AS string) AS coupon_code",
    ).withColumn("event_date", F.to_date("event_timestamp")).write.format("delta").partitionBy(
        "tenant_id", "event_date"
    ).save(path)


# daily volumes of the incremental run: a build's fixed cost is most of a one-day build at the first, little at the
# second
INCREMENTAL_EVENTS_PER_DAY = (40_000, 400_000)


def bench_incremental(events_per_day: int) -> dict[str, Any]:
    """Gold fct_orders_daily: one day (incremental) vs 30 days (full rebuild) over the same Silver table."""
    from lakehouse.config.marts import mart
    from lakehouse.spark.jobs.gold import build
    from lakehouse.spark.session import get_spark

    tag = uuid.uuid4().hex[:6]
    work = bench_home() / f"gold-{tag}"
    env = use(isolated_config(tag), work / "lake", work / "checkpoints")
    spark = get_spark("bench", own_driver=True)
    first = date(2026, 10, 1)
    write_silver_orders(spark, env.storage.table_path("silver", "orders"), events_per_day, first, 30)
    spec = mart("fct_orders_daily")
    build(spark, env, spec, first, first + timedelta(days=30))  # warm-up: JIT, caches, table creation

    def timed(start: date, days: int) -> float:
        t0 = time.perf_counter()
        build(spark, env, spec, start, start + timedelta(days=days))
        return time.perf_counter() - t0

    full = statistics.median([timed(first, 30) for _ in range(3)])
    day = first + timedelta(days=15)
    one_day = statistics.median([timed(day, 1) for _ in range(3)])
    orders = (
        spark.read.format("delta")
        .load(env.storage.table_path("gold", spec.name))
        .where(f"order_date = date'{day.isoformat()}'")
        .selectExpr("sum(orders_placed + orders_cancelled) AS n")
        .first()
    )
    assert orders is not None and orders["n"] == events_per_day, f"{day}: {orders}, expected {events_per_day}"
    return {
        "events_per_day": events_per_day,
        "silver_rows": events_per_day * 30,
        "full_30_days_s": full,
        "incremental_1_day_s": one_day,
        "ratio": one_day / full,
    }


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each flag's default."""


def main() -> None:
    """Run the chosen benchmarks, record the run and write docs/benchmarks.md."""
    from lakehouse.scripts.bench_stream import add_arguments, bench_stream, options_from

    parser = argparse.ArgumentParser(prog="bench", description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument(
        "benchmarks", nargs="*", metavar="BENCHMARK", help=f"any of {', '.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument("--only", action="append", default=[], help="the same as naming a benchmark (repeatable)")
    add_arguments(parser)
    group = parser.add_argument_group("loader, bi, incremental")
    group.add_argument("--loader-rows", type=int, default=300_000)
    group.add_argument("--fact-rows", type=int, default=10_000_000)
    group.add_argument("--query-runs", type=int, default=40)
    group.add_argument(
        "--events-per-day",
        type=int,
        action="append",
        help="daily Silver volume of the incremental run; repeat for several "
        f"(default: {' and '.join(map(str, INCREMENTAL_EVENTS_PER_DAY))})",
    )
    args = parser.parse_args()
    named = [{"streaming": "stream"}.get(b, b) for b in [*args.benchmarks, *args.only]]
    unknown = sorted(set(named) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    chosen = [b for b in BENCHMARKS if b in named] or list(BENCHMARKS)
    command = "make bench" if len(sys.argv) == 1 else "python -m lakehouse.scripts.bench " + " ".join(sys.argv[1:])
    os.environ.update(BENCH_ENV)
    from lakehouse.config.settings import settings
    from lakehouse.postgres.migrate import migrate
    from lakehouse.scripts.bench_meta import RunRecord
    from lakehouse.scripts.stack import LocalStack

    settings.cache_clear()
    stack = LocalStack(settings())
    stack.up(("kafka", "postgres"))
    dsn = settings().postgres_dsn()
    migrate(dsn)  # the streams record their batches in lakehouse_meta.stream_batches
    record = RunRecord(command, dsn)
    runs: dict[str, Callable[[], Any]] = {
        "stream": lambda: bench_stream(options_from(args)),
        "loader": lambda: bench_loader(args.loader_rows),
        "bi": lambda: bench_bi_queries(args.fact_rows, args.query_runs),
        "incremental": lambda: [bench_incremental(n) for n in args.events_per_day or INCREMENTAL_EVENTS_PER_DAY],
    }
    results: dict[str, Any] = {}
    try:
        for name in chosen:
            print(f"== {name}", flush=True)
            results[name] = runs[name]()
            shown = {k: v for k, v in results[name].items() if k != "samples"} if name == "stream" else results[name]
            print(json.dumps(shown, indent=2, default=str), flush=True)
        run = record.finish()
    finally:
        stack.down()
    print(f"wrote {write_report(results, run)}")
    if "stream" in results and not results["stream"]["passed"]:
        print(f"a correctness gate of the streaming benchmark failed; the lake is kept in {results['stream']['lake']}")
        sys.exit(1)


if __name__ == "__main__":
    main()
