"""``make bench``: the numbers in docs/benchmarks.md, measured on this machine.

1. stream: the streaming path under a sustained open-loop load (``lakehouse.scripts.bench_stream``): the highest
   sustained rate, produce -> Silver freshness at fractions of it, correctness gates, per-row ceiling;
2. loader: the COPY loader against pandas ``to_sql`` (INSERTs, and the COPY ``method=``) from one Gold Delta table
   read over Spark Connect, alternated (``lakehouse.scripts.bench_loader``);
3. bi: p50/p95/p99 latency of docs/bi_queries.sql over a fact table of 10M rows: cold and warm cache, 1 and 8
   clients, during a loader swap (``lakehouse.scripts.bench_bi``);
4. incremental: Gold, an incremental one-day build against a 30-day full rebuild, at two daily volumes, over Silver
   written by the stream where that fits the time budget (``lakehouse.scripts.bench_incremental``);
5. model_serving: the sentiment model over REST, one-text latency under 50 clients and 1,000-text throughput, the
   stack's model server beside itself without batching and ``mlflow models serve``
   (``lakehouse.scripts.bench_serving_model``);
6. model_quality: the sentiment model's holdout macro-F1 against the VADER baseline's on generated reviews, per
   corpus size and seed (``lakehouse.scripts.bench_model_quality``);
7. scoring: the Silver stream of customer_events with sentiment scoring on against off, over mixed events and over
   reviews only, alternated (``lakehouse.scripts.bench_scoring``);
8. dashboards: Superset's Revenue dashboard over a 10M-row fact table, each chart's data request and the whole
   dashboard drawn in headless Chromium (``lakehouse.scripts.bench_dashboards``);
9. hostile: the stream's batch time over orders with and without hostile input (10 MB, a million-element array,
   NUL, surrogate, hostile tenants, deep nesting), alternated (``lakehouse.scripts.bench_hostile``).

    python -m lakehouse.scripts.bench                       # everything, the full protocol (make bench)
    python -m lakehouse.scripts.bench stream --steps 2000,5000 --step-seconds 40 --prefill-rows 100000
    python -m lakehouse.scripts.bench scoring --scoring-events 100000

Runs its own stack (``lakehouse.scripts.bench_env``: Kafka, PostgreSQL with its default durability, a Spark
Connect server for the loader and BI runs, and the MLflow server for model serving and scoring) so a demo stack can
stay up. Each run records itself (commit, config hash, cores, CPU steal, PostgreSQL durability) beside its results; a
benchmark run alone replaces only its own section of docs/benchmarks.md. Exits 1 when a correctness gate of the
streaming benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from lakehouse.scripts.bench_bi import named_queries
from lakehouse.scripts.bench_env import BENCH_ENV, ROOT
from lakehouse.scripts.bench_report import write_report

__all__ = ["BENCH_ENV", "ROOT", "main", "named_queries"]
BENCHMARKS = (
    "stream",
    "loader",
    "bi",
    "incremental",
    "model_serving",
    "model_quality",
    "scoring",
    "dashboards",
    "hostile",
)
# daily volumes of the incremental run: a build's fixed cost is most of a one-day build at the first, little at the
# second
INCREMENTAL_EVENTS_PER_DAY = (40_000, 400_000)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each flag's default."""


def main() -> None:
    """Run the chosen benchmarks, record the run and write docs/benchmarks.md."""
    from lakehouse.scripts.bench_model_quality import DEFAULT_SEEDS, DEFAULT_SIZES
    from lakehouse.scripts.bench_stream import add_arguments, bench_stream, comma_numbers, options_from

    parser = argparse.ArgumentParser(prog="bench", description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument(
        "benchmarks", nargs="*", metavar="BENCHMARK", help=f"any of {', '.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument("--only", action="append", default=[], help="the same as naming a benchmark (repeatable)")
    add_arguments(parser)
    group = parser.add_argument_group("loader, bi, incremental, model_serving")
    group.add_argument("--loader-rows", type=int, default=300_000)
    group.add_argument("--fact-rows", type=int, default=10_000_000)
    group.add_argument("--loader-repeats", type=int, default=5, help="timed runs of each loader side, alternated")
    group.add_argument("--query-runs", type=int, default=1000, help="runs per BI query and case")
    group.add_argument(
        "--events-per-day",
        type=int,
        action="append",
        help="daily Silver volume of the incremental run; repeat for several "
        f"(default: {' and '.join(map(str, INCREMENTAL_EVENTS_PER_DAY))})",
    )
    group.add_argument("--serving-seconds", type=float, default=20, help="measured seconds per model-serving case")
    dashboards = parser.add_argument_group("dashboards")
    dashboards.add_argument("--dashboard-runs", type=int, default=50, help="timed data requests per chart and case")
    dashboards.add_argument("--dashboard-renders", type=int, default=10, help="timed renders of the whole dashboard")
    quality = parser.add_argument_group("model_quality")
    quality.add_argument(
        "--quality-sizes",
        type=comma_numbers(int),
        default=DEFAULT_SIZES,
        help="generated reviews per corpus, comma-separated",
    )
    quality.add_argument(
        "--quality-seeds", type=comma_numbers(int), default=DEFAULT_SEEDS, help="corpus seeds, comma-separated"
    )
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--scoring-events", type=int, default=200_000, help="mixed customer_events streamed per run")
    scoring.add_argument("--scoring-reviews", type=int, default=50_000, help="reviews with a text, the worst case")
    scoring.add_argument("--scoring-pairs", type=int, default=2, help="measured runs of each side, alternated")
    hostile = parser.add_argument_group("hostile")
    hostile.add_argument("--hostile-events", type=int, default=100_000, help="clean orders per input")
    hostile.add_argument("--hostile-pairs", type=int, default=2, help="measured runs of each input, alternated")
    hostile.add_argument("--hostile-batch", type=int, default=10_000, help="records per micro-batch")
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
    from lakehouse.scripts.bench_bi import bench_bi_queries
    from lakehouse.scripts.bench_dashboards import bench_dashboards
    from lakehouse.scripts.bench_hostile import bench_hostile
    from lakehouse.scripts.bench_incremental import bench_incremental_volumes
    from lakehouse.scripts.bench_loader import bench_loader
    from lakehouse.scripts.bench_meta import RunRecord
    from lakehouse.scripts.bench_model_quality import bench_model_quality
    from lakehouse.scripts.bench_scoring import bench_scoring
    from lakehouse.scripts.bench_serving_model import bench_model_serving
    from lakehouse.scripts.stack import LocalStack

    settings.cache_clear()
    stack = LocalStack(settings())
    # the loader and the BI run's loader swaps read over Spark Connect, as Gold tasks do; model serving needs only
    # PostgreSQL and the MLflow server
    components = (
        ["kafka", "postgres"] if set(chosen) - {"model_serving", "model_quality", "dashboards"} else ["postgres"]
    )
    components += ["spark"] if {"loader", "bi"} & set(chosen) else []
    components += ["mlflow"] if {"model_serving", "scoring"} & set(chosen) else []
    components += ["superset"] if "dashboards" in chosen else []
    stack.up(tuple(components))

    def restart_postgres() -> None:
        stack.postgres.stop()
        stack.postgres.start()

    dsn = settings().postgres_dsn()
    migrate(dsn)  # the streams record their batches in lakehouse_meta.stream_batches
    record = RunRecord(command, dsn)
    runs: dict[str, Callable[[], Any]] = {
        "stream": lambda: bench_stream(options_from(args)),
        "loader": lambda: bench_loader(args.loader_rows, args.loader_repeats),
        "bi": lambda: bench_bi_queries(
            args.fact_rows, args.query_runs, restart_postgres, ROOT / "docs" / "bi_queries.sql"
        ),
        "incremental": lambda: bench_incremental_volumes(list(args.events_per_day or INCREMENTAL_EVENTS_PER_DAY)),
        "model_serving": lambda: bench_model_serving(settings(), args.serving_seconds),
        "model_quality": lambda: bench_model_quality(args.quality_sizes, args.quality_seeds),
        "scoring": lambda: bench_scoring(settings(), args.scoring_events, args.scoring_reviews, args.scoring_pairs),
        "dashboards": lambda: bench_dashboards(settings(), args.fact_rows, args.dashboard_runs, args.dashboard_renders),
        "hostile": lambda: bench_hostile(settings(), args.hostile_events, args.hostile_pairs, args.hostile_batch),
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
