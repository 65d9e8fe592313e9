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
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config.settings import Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.config.specs import MartSpec, event_type, mart
from lakehouse.postgres import gold_checks
from lakehouse.postgres.errors import DataQualityError
from lakehouse.postgres.gold_checks import GoldCheck
from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.io import reference
from lakehouse.spark.io.delta import read_table, replace_range
from lakehouse.spark.jobs.common import run_job
from lakehouse.spark.session import get_spark
from lakehouse.spark.transforms import gold

log = logging.getLogger(__name__)
Builder = Callable[[SparkSession, Settings, date, date], DataFrame]


def silver_events(spark: SparkSession, settings: Settings, name: str, start: date, end: date) -> DataFrame:
    """Silver rows of one event type with ``start <= event_date < end`` (partition-pruned)."""
    path = settings.storage.table_path("silver", event_type(name).tables.silver)
    silver = read_table(spark, path)
    if silver is None:
        raise SparkJobError(f"Silver table {path} does not exist yet: run `lakehouse stream silver` first")
    return _event_dates(silver, start, end)


def _event_dates(silver: DataFrame, start: date, end: date) -> DataFrame:
    return silver.where((F.col("event_date") >= F.lit(start)) & (F.col("event_date") < F.lit(end)))


def _fct_orders_daily(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    return gold.fct_orders_daily(
        silver_events(spark, settings, "orders", start, end), _current_reference(spark, settings, "products")
    )


def _silver_or_empty(spark: SparkSession, settings: Settings, name: str, start: date, end: date) -> DataFrame:
    """Like ``silver_events``, but an event type whose Silver table does not exist yet (nothing streamed)
    reads as no events, with the contract's columns: marts over several sources still build."""
    spec = event_type(name)
    silver = read_table(spark, settings.storage.table_path("silver", spec.tables.silver))
    if silver is not None:
        return _event_dates(silver, start, end)
    log.warning("no Silver table for %s yet: building as if it had no events", name)
    schema = ", ".join([*(f"`{f.name}` {f.spark_type}" for f in spec.fields), "event_date date"])
    return spark.createDataFrame([], schema)


def _reference_versions(spark: SparkSession, settings: Settings, table: str) -> DataFrame:
    """Every version of a reference table, with ``_valid_from`` and ``_is_current``, refreshed from the config
    folder first if its files changed (only marts that read reference data pay for that check)."""
    reference.refresh(spark, settings, [table])
    return spark.read.format("delta").load(settings.storage.table_path("reference", table))


def _current_reference(spark: SparkSession, settings: Settings, table: str) -> DataFrame:
    """The current rows of a reference table, refreshed first if its files changed."""
    return _reference_versions(spark, settings, table).where("_is_current")


def _order_revenue_5min(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    return gold.order_revenue_5min(
        _silver_or_empty(spark, settings, "orders", start, end), _current_reference(spark, settings, "products")
    )


def _customer_behavior_daily(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    return gold.customer_behavior_daily(
        _silver_or_empty(spark, settings, "customer_events", start, end),
        _silver_or_empty(spark, settings, "orders", start, end),
    )


def _product_reviews_daily(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    return gold.product_reviews_daily(_silver_or_empty(spark, settings, "customer_events", start, end))


def _customer_features(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    # the features of day d look back over [d - 29, d]: read that much before the interval
    lookback_start = start - timedelta(days=gold.LOOKBACK_DAYS - 1)
    return gold.customer_features(
        _silver_or_empty(spark, settings, "orders", lookback_start, end),
        _silver_or_empty(spark, settings, "customer_events", lookback_start, end),
        start,
        end,
    )


def _device_metrics_minute(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    return gold.device_metrics_minute(_silver_or_empty(spark, settings, "device_metrics", start, end))


def _dim_product(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    return gold.dim_product(_reference_versions(spark, settings, "products"))


def _dim_customer(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    return gold.dim_customer(_reference_versions(spark, settings, "customers"))


DIM_DATE_FIRST, DIM_DATE_LAST = date(2024, 1, 1), date(2027, 12, 31)


def _dim_date(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    return gold.dim_date(gold.date_spine(spark, DIM_DATE_FIRST, DIM_DATE_LAST))


BUILDERS: dict[str, Builder] = {
    "fct_orders_daily": _fct_orders_daily,
    "order_revenue_5min": _order_revenue_5min,
    "customer_behavior_daily": _customer_behavior_daily,
    "product_reviews_daily": _product_reviews_daily,
    "customer_features": _customer_features,
    "device_metrics_minute": _device_metrics_minute,
    "dim_product": _dim_product,
    "dim_customer": _dim_customer,
    "dim_date": _dim_date,
}


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
    if spec.load_mode == "full" or spec.date_column is None:
        return [], None
    dates = set(_days(start, end))
    new_watermark: datetime | None = None
    for source in spec.sources:
        silver = read_table(spark, settings.storage.table_path("silver", event_type(source).tables.silver))
        if silver is None:
            continue
        stats = silver.agg(F.max("_ingested_at").alias("w")).first()
        if stats is not None and stats["w"] is not None:
            new_watermark = max(filter(None, [new_watermark, stats["w"]]))
        if watermark is None:
            continue
        late = (
            silver.where((F.col("_ingested_at") > F.lit(watermark)) & (F.col("event_date") < F.lit(start)))
            .select("event_date")
            .distinct()
            .collect()  # a handful of dates, not data
        )
        span = timedelta(days=spec.late_data_span_days)
        for row in late:
            dates.update(d for d in _days(row["event_date"], row["event_date"] + span) if d < start)
    return sorted(dates), new_watermark


def build(
    spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date, dates: list[date] | None = None
) -> None:
    """Recompute the mart for ``dates`` (default: every day of [start, end)) and replace exactly those days of
    its Gold table, one commit per contiguous block of days; a full-refresh mart is rebuilt as a whole. Row
    counts come from the DQ gate (``check``), so the frames are computed once, by the write."""
    if spec.name not in BUILDERS:
        raise SparkJobError(f"{spec.source_file}: no builder for mart {spec.name!r} in lakehouse.spark.jobs.gold")
    path = settings.storage.table_path("gold", spec.name)
    if spec.load_mode == "full" or spec.date_column is None:
        frame = BUILDERS[spec.name](spark, settings, start, end)
        frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
        log.info("built %s (full refresh)", spec.name)
        return
    for block_start, block_end in _blocks(dates or _days(start, end)):
        frame = BUILDERS[spec.name](spark, settings, block_start, block_end)
        replace_range(
            frame,
            path,
            spec.date_column,
            block_start.isoformat(),
            block_end.isoformat(),
            partition_by=(spec.date_column,),
        )
        log.info("built %s for %s..%s", spec.name, block_start, block_end)


def check(
    spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date, dates: list[date] | None = None
) -> tuple[list[str], int, int]:
    """The DQ gate over the built days: (problems, Gold rows, Silver rows). No problems = the load may proceed."""
    gold_path = settings.storage.table_path("gold", spec.name)
    rows = read_table(spark, gold_path)
    if rows is None:
        return [f"Gold table {gold_path} does not exist: build the mart first"], 0, 0
    days = dates or _days(start, end)
    full = spec.load_mode == "full" or spec.date_column is None
    if not full:
        rows = rows.where(F.col(str(spec.date_column)).isin(days))
    problems: list[str] = []
    checks = spec.checks
    silver_total: DataFrame | None = None
    silver_count = 0
    if not full and spec.sources:
        inputs = [
            _silver_or_empty(spark, settings, source, min(days), max(days) + timedelta(days=1)).where(
                F.col("event_date").isin(days)
            )
            for source in spec.sources
        ]
        silver_count = sum(int(frame.count()) for frame in inputs)
        if checks.reconcile is not None:
            silver_total = _silver_or_empty(
                spark, settings, checks.reconcile.silver_source, min(days), max(days) + timedelta(days=1)
            ).where(F.col("event_date").isin(days))
    stats = rows.agg(
        F.count(F.lit(1)).alias("n"),
        F.count_distinct(*[F.col(c) for c in spec.grain]).alias("keys"),
        *([F.expr(checks.reconcile.gold).alias("gold_total")] if checks.reconcile else []),
    ).first()
    assert stats is not None
    gold_rows = int(stats["n"])
    if checks.expect_rows and gold_rows == 0 and (full or silver_count > 0):
        problems.append(f"{spec.name}: 0 rows for {start}..{end} although its inputs have data")
    if checks.unique_keys and stats["keys"] != gold_rows:
        problems.append(f"{spec.name}: {gold_rows - stats['keys']} duplicate key(s) on grain {spec.grain}")
    if checks.reconcile is not None and silver_total is not None:
        total = silver_total.agg(F.expr(checks.reconcile.silver).alias("t")).first()
        expected = float((total["t"] if total else None) or 0)
        actual = float(stats["gold_total"] or 0)
        if abs(expected - actual) > checks.reconcile.tolerance:
            problems.append(
                f"{spec.name}: reconciliation failed: Gold {checks.reconcile.gold} = {actual} but "
                f"Silver {checks.reconcile.silver} = {expected}"
            )
    return problems, gold_rows, silver_count


def build_and_check(
    spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date, dsn: str | None
) -> GoldCheck:
    """Plan (interval + late days), build, run the DQ gate, and record the result in PostgreSQL when ``dsn``."""
    watermark = gold_checks.loaded_watermark(dsn, spec.name) if dsn else None
    dates, new_watermark = plan(spark, settings, spec, start, end, watermark)
    build(spark, settings, spec, start, end, dates)
    problems, gold_rows, silver_rows = check(spark, settings, spec, start, end, dates)
    result = GoldCheck(
        spec.name,
        start,
        end,
        dates,
        gold_rows,
        silver_rows,
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
        silver_rows,
        f", late days rebuilt: {', '.join(map(str, late))}" if late else "",
        "passed" if result.passed else "FAILED: " + "; ".join(problems),
    )
    return result


def load(spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date, dsn: str) -> int:
    """Load the days the build replaced (interval + late days) into PostgreSQL, each contiguous range in one
    transaction (COPY into staging, then swap), and mark the build loaded."""
    from lakehouse.postgres.loader import load_mart

    recorded = gold_checks.latest(dsn, spec.name, start, end)
    if recorded is not None and not recorded.passed:
        raise DataQualityError(
            f"{spec.name} {start}..{end} failed its DQ gate, nothing loaded: " + "; ".join(recorded.problems)
        )
    watermark = recorded.silver_watermark if recorded else None
    ranges = [(start, end)] if not recorded or not recorded.built_dates else _blocks(recorded.built_dates)
    rows = 0
    for range_start, range_end in ranges:
        result = load_mart(
            settings, spec.name, range_start, range_end, dsn=dsn, spark=spark, silver_watermark=watermark
        )
        log.info("%s", result.summary())
        rows += result.rows
    if recorded is not None:
        gold_checks.mark_loaded(dsn, spec.name, start, end)
    return rows


def main(argv: list[str]) -> None:
    """Parse the command line and run one action."""
    parser = argparse.ArgumentParser(prog="gold", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "action",
        choices=("build", "load", "all"),
        help="build: rebuild and run the DQ gate; load: copy into PostgreSQL; all: both, "
        "failing before the load when the gate fails",
    )
    parser.add_argument("mart", help="mart name (config/marts/<name>.yaml)")
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day, inclusive")
    parser.add_argument("--end", required=True, type=date.fromisoformat, help="last day, exclusive")
    parser.add_argument(
        "--dsn-env",
        default="LAKEHOUSE_PG_DSN",
        help="environment variable holding the serving DSN (default: LAKEHOUSE_PG_DSN, else the environment config)",
    )
    args = parser.parse_args(argv)
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
