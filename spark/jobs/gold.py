"""Gold batch job: build one mart for a date interval from Silver, check it, or load it into PostgreSQL.

spark-submit spark/jobs/gold.py build fct_orders_daily --start 2026-11-20 --end 2026-11-21
spark-submit spark/jobs/gold.py load  fct_orders_daily --start ... --end ... [--dsn-env LAKEHOUSE_PG_DSN]
spark-submit spark/jobs/gold.py all   fct_orders_daily --start ... --end ...

The interval is [start, end). ``build`` also rebuilds the earlier days touched by Silver rows that arrived since
the mart's last load (late data), and records the DQ gate's result in lakehouse_meta.gold_checks; ``load``
replaces exactly the rebuilt days in PostgreSQL. Reruns and backfills are idempotent.
"""

from __future__ import annotations

import argparse
import logging
import os
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config.marts import MartSpec, mart
from lakehouse.config.settings import Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.config.specs import event_type
from lakehouse.postgres import gold_checks
from lakehouse.postgres.errors import DataQualityError
from lakehouse.postgres.gold_checks import GoldCheck
from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.io import sinks
from lakehouse.spark.io.delta import read_table, replace_range, save
from lakehouse.spark.jobs.common import run_job
from lakehouse.spark.marts import build_frame, silver_rows
from lakehouse.spark.session import get_spark

log = logging.getLogger(__name__)


def _blocks(dates: list[date]) -> list[tuple[date, date]]:
    """Contiguous [start, end) ranges covering ``dates``."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(dates)):
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], day + timedelta(days=1))
        else:
            ranges.append((day, day + timedelta(days=1)))
    return ranges


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def plan(
    spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date, watermark: datetime | None
) -> tuple[list[date], datetime | None]:
    """The days a run must rebuild: its interval, plus the days (before it) touched by Silver rows ingested after
    ``watermark`` — late data — widened by the mart's ``late_data_span_days``. Also returns the new watermark."""
    if spec.is_full_refresh:
        return [], None
    dates = set(_days(start, end))
    new_watermark: datetime | None = None
    for source in spec.inputs.silver:
        silver = read_table(spark, settings.storage.table("silver", event_type(source).tables.silver))
        if silver is None:
            continue
        # one scan: the newest ingestion time and, after a load, the earlier days of the rows ingested since
        late_days = []
        if watermark is not None:
            late_row = (F.col("_ingested_at") > F.lit(watermark)) & (F.col("event_date") < F.lit(start))
            late_days = [F.array_distinct(F.collect_list(F.when(late_row, F.col("event_date")))).alias("late")]
        stats = silver.agg(F.max("_ingested_at").alias("w"), *late_days).first()  # a few dates, not data
        if stats is None:
            continue
        if stats["w"] is not None:
            new_watermark = max(filter(None, [new_watermark, stats["w"]]))
        if watermark is None:
            continue
        span = timedelta(days=spec.inputs.late_data_span_days)
        for day in stats["late"]:
            dates.update(d for d in _days(day, day + span) if d < start)
    return sorted(dates), new_watermark


def build(
    spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date, dates: list[date] | None = None
) -> None:
    """Recompute the mart for ``dates`` (default: every day of [start, end)) and replace exactly those days of
    its Gold table, one commit per contiguous block of days; a full-refresh mart is rebuilt as a whole. Row
    counts come from the DQ gate (``check``), so the frames are computed once, by the write."""
    gold = settings.storage.table("gold", spec.name)
    if spec.is_full_refresh:
        frame = build_frame(spark, settings, spec, start, end)
        save(spark, frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true"), gold)
        log.info("built %s (full refresh)", spec.name)
        return
    for block_start, block_end in _blocks(dates or _days(start, end)):
        replace_range(
            build_frame(spark, settings, spec, block_start, block_end),
            gold,
            str(spec.date_column),
            block_start.isoformat(),
            block_end.isoformat(),
            partition_by=(str(spec.date_column),),
        )
        log.info("built %s for %s..%s", spec.name, block_start, block_end)


def check(
    spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date, dates: list[date] | None = None
) -> tuple[list[str], int, int]:
    """The DQ gate over the built days: (problems, Gold rows, Silver rows). No problems = the load may proceed."""
    gold = settings.storage.table("gold", spec.name)
    rows = read_table(spark, gold)
    if rows is None:
        return [f"Gold table {gold} does not exist: build the mart first"], 0, 0
    days = dates or _days(start, end)
    full = spec.is_full_refresh
    if not full:
        rows = rows.where(F.col(str(spec.date_column)).isin(days))
    problems: list[str] = []
    checks = spec.checks
    silver: dict[str, DataFrame] = {}
    if not full:
        silver = {
            source: silver_rows(spark, settings, source, min(days), max(days) + timedelta(days=1)).where(
                F.col("event_date").isin(days)
            )
            for source in spec.inputs.silver
        }
    reconcile = checks.reconcile
    silver_stats = {  # one job per source: its row count, and the reconciliation total where it is the source
        source: frame.agg(
            F.count(F.lit(1)).alias("n"),
            *([F.expr(reconcile.silver).alias("t")] if reconcile and source == reconcile.silver_source else []),
        ).first()
        for source, frame in silver.items()
    }
    silver_count = sum(int(row["n"]) for row in silver_stats.values() if row is not None)
    column_tests = _column_tests(spec)
    stats = rows.agg(
        F.count(F.lit(1)).alias("n"),
        F.count_distinct(*[F.col(c) for c in spec.grain]).alias("keys"),
        *([F.expr(checks.reconcile.gold).alias("gold_total")] if checks.reconcile else []),
        *(test.alias(f"test_{i}") for i, (_, test) in enumerate(column_tests)),
    ).first()
    assert stats is not None
    gold_rows = int(stats["n"])
    if checks.expect_rows and gold_rows == 0 and (full or silver_count > 0):
        problems.append(f"{spec.name}: 0 rows for {start}..{end} although its inputs have data")
    if checks.unique_keys and stats["keys"] != gold_rows:
        problems.append(f"{spec.name}: {gold_rows - stats['keys']} duplicate key(s) on grain {spec.grain}")
    for i, (name, _) in enumerate(column_tests):
        failing = int(stats[f"test_{i}"] or 0)
        if failing:
            problems.append(f"{spec.name}: column test {name} fails for {failing} row(s)")
    if checks.reconcile is not None and not full:
        total = silver_stats[checks.reconcile.silver_source]
        expected = float((total["t"] if total else None) or 0)
        actual = float(stats["gold_total"] or 0)
        if abs(expected - actual) > checks.reconcile.tolerance:
            problems.append(
                f"{spec.name}: reconciliation failed: Gold {checks.reconcile.gold} = {actual} but "
                f"Silver {checks.reconcile.silver} = {expected}"
            )
    return problems, gold_rows, silver_count


def _column_tests(spec: MartSpec) -> list[tuple[str, Column]]:
    """The contract's column tests, each as (name, aggregate counting the rows that fail it)."""
    tests: list[tuple[str, Column]] = []
    for column in spec.columns:
        value = F.col(column.name)
        for test in column.tests:
            if test == "not_null":
                tests.append((f"not_null({column.name})", F.count_if(value.isNull())))
            elif test == "unique":
                tests.append((f"unique({column.name})", F.count(value) - F.count_distinct(value)))
        accepted = column.accepted_values
        if accepted is not None:
            outside = value.isNotNull() & ~value.isin(accepted)
            tests.append((f"accepted_values({column.name})", F.count_if(outside)))
    return tests


def build_and_check(
    spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date, dsn: str | None
) -> GoldCheck:
    """Plan (interval + late days), build, run the DQ gate, and record the result in PostgreSQL when ``dsn``."""
    watermark = gold_checks.loaded_watermark(dsn, spec.name) if dsn else None
    dates, new_watermark = plan(spark, settings, spec, start, end, watermark)
    build(spark, settings, spec, start, end, dates)
    problems, gold_rows, silver_count = check(spark, settings, spec, start, end, dates)
    result = GoldCheck(
        spec.name,
        start,
        end,
        dates,
        gold_rows,
        silver_count,
        new_watermark.replace(tzinfo=UTC) if new_watermark else None,
        problems,
    )
    if dsn:
        gold_checks.record(dsn, result)
    late = sorted(set(dates) - set(_days(start, end)))
    log.info(
        "%s %s..%s: %d Gold rows from %d Silver rows%s; DQ gate %s",
        spec.name,
        start,
        end,
        gold_rows,
        silver_count,
        f", late days rebuilt: {', '.join(map(str, late))}" if late else "",
        "passed" if result.passed else "FAILED: " + "; ".join(problems),
    )
    return result


def load(spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date, dsn: str) -> int:
    """Write the days the build replaced (interval + late days) to every sink of the mart (PostgreSQL: each
    contiguous range in one transaction, COPY into staging, then swap), and mark the build loaded. Returns the
    rows written to the first sink."""
    recorded = gold_checks.latest(dsn, spec.name, start, end)
    if recorded is not None and not recorded.passed:
        raise DataQualityError(
            f"{spec.name} {start}..{end} failed its DQ gate, nothing loaded: " + "; ".join(recorded.problems)
        )
    watermark = recorded.silver_watermark if recorded else None
    ranges = [(start, end)] if not recorded or not recorded.built_dates else _blocks(recorded.built_dates)
    rows = 0
    for range_start, range_end in ranges:
        rows += sinks.write(spark, settings, spec, range_start, range_end, dsn, watermark)[0].rows
    if recorded is not None:
        gold_checks.mark_loaded(dsn, spec.name, start, end)
    return rows


def arguments() -> argparse.ArgumentParser:
    """The job's command line (what ``lakehouse-job gold`` and ``spark-submit spark/jobs/gold.py`` take)."""
    parser = argparse.ArgumentParser(prog="gold", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "action",
        choices=("build", "load", "all"),
        help="build: rebuild and run the DQ gate; load: copy into PostgreSQL; all: both, "
        "failing before the load when the gate fails",
    )
    parser.add_argument("mart", help="mart name (config/marts/<name>.yaml)")
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day, inclusive")
    parser.add_argument(
        "--end",
        required=True,
        type=date.fromisoformat,
        help="day after the last day to build: the interval is [start, end)",
    )
    parser.add_argument(
        "--dsn-env",
        default="LAKEHOUSE_PG_DSN",
        help="environment variable holding the serving DSN (default: LAKEHOUSE_PG_DSN, else the environment config)",
    )
    return parser


def main(argv: list[str]) -> None:
    """Parse the command line and run one action."""
    args = arguments().parse_args(argv)
    if args.end <= args.start:
        raise SparkJobError(f"--end ({args.end}) must be after --start ({args.start})")
    settings = current_settings()
    spec = mart(args.mart)
    dsn = os.environ.get(args.dsn_env) or settings.postgres_dsn()
    spark = get_spark(f"lakehouse-gold-{spec.name}")
    if args.action in ("build", "all"):
        result = build_and_check(spark, settings, spec, args.start, args.end, dsn)
        if args.action == "all" and not result.passed:
            raise DataQualityError("DQ gate failed, nothing loaded: " + "; ".join(result.problems))
    if args.action in ("load", "all"):
        load(spark, settings, spec, args.start, args.end, dsn)


if __name__ == "__main__":
    run_job(main)
