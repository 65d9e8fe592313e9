"""Gold batch job: build one mart for a date interval from Silver, check it, or load it into PostgreSQL.

spark-submit spark/jobs/gold.py build fct_orders_daily --start 2026-11-20 --end 2026-11-21
spark-submit spark/jobs/gold.py check fct_orders_daily --start ... --end ...
spark-submit spark/jobs/gold.py load  fct_orders_daily --start ... --end ... [--dsn-env LAKEHOUSE_PG_DSN]

The interval is [start, end): a rerun replaces exactly that interval (Delta replaceWhere; Postgres swap in one
transaction), so runs and backfills are idempotent.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config.settings import Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.config.specs import MartSpec, event_type, mart
from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.io import reference
from lakehouse.spark.io.delta import replace_range, table_exists
from lakehouse.spark.jobs.common import run_job
from lakehouse.spark.session import get_spark
from lakehouse.spark.transforms import gold

log = logging.getLogger(__name__)
Builder = Callable[[SparkSession, Settings, date, date], DataFrame]


def silver_events(spark: SparkSession, settings: Settings, name: str, start: date, end: date) -> DataFrame:
    """Silver rows of one event type with ``start <= event_date < end`` (partition-pruned)."""
    path = settings.storage.table_path("silver", event_type(name).tables.silver)
    if not table_exists(spark, path):
        raise SparkJobError(f"Silver table {path} does not exist yet: run `lakehouse stream silver` first")
    return (
        spark.read.format("delta")
        .load(path)
        .where((F.col("event_date") >= F.lit(start)) & (F.col("event_date") < F.lit(end)))
    )


def _fct_orders_daily(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    return gold.fct_orders_daily(
        silver_events(spark, settings, "orders", start, end), reference.current(spark, settings, "products")
    )


def _silver_or_empty(spark: SparkSession, settings: Settings, name: str, start: date, end: date) -> DataFrame:
    """Like ``silver_events``, but an event type whose Silver table does not exist yet (nothing streamed)
    reads as no events, with the contract's columns: marts over several sources still build."""
    spec = event_type(name)
    if table_exists(spark, settings.storage.table_path("silver", spec.tables.silver)):
        return silver_events(spark, settings, name, start, end)
    log.warning("no Silver table for %s yet: building as if it had no events", name)
    schema = ", ".join([*(f"`{f.name}` {f.spark_type}" for f in spec.fields), "event_date date"])
    return spark.createDataFrame([], schema)


def _reference_versions(spark: SparkSession, settings: Settings, table: str) -> DataFrame:
    """Every version of a reference table (as refreshed by ``build``), with ``_valid_from`` and ``_is_current``."""
    return spark.read.format("delta").load(settings.storage.table_path("reference", table))


def _order_revenue_5min(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    return gold.order_revenue_5min(
        _silver_or_empty(spark, settings, "orders", start, end), reference.current(spark, settings, "products")
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


def build(spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date) -> int:
    """Recompute the mart for [start, end) and replace that interval of its Gold table; returns row count."""
    if spec.name not in BUILDERS:
        raise SparkJobError(f"{spec.source_file}: no builder for mart {spec.name!r} in lakehouse.spark.jobs.gold")
    reference.refresh(spark, settings, ["products", "customers"])
    frame = BUILDERS[spec.name](spark, settings, start, end).persist()
    path = settings.storage.table_path("gold", spec.name)
    try:
        rows = frame.count()
        if spec.load_mode == "full" or spec.date_column is None:
            # a full-refresh mart (dimension) is rebuilt as a whole on every run
            frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
        else:
            replace_range(
                frame,
                path,
                spec.date_column,
                start.isoformat(),
                end.isoformat(),
                partition_by=(spec.date_column,),
            )
    finally:
        frame.unpersist()
    log.info("built %s for %s..%s: %d rows", spec.name, start, end, rows)
    return rows


def check(spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date) -> list[str]:
    """The DQ gate: problems found in the built interval (empty list = load may proceed)."""
    gold_path = settings.storage.table_path("gold", spec.name)
    if not table_exists(spark, gold_path):
        return [f"Gold table {gold_path} does not exist: build the mart first"]
    rows = spark.read.format("delta").load(gold_path)
    if spec.load_mode == "interval" and spec.date_column is not None:
        rows = rows.where((F.col(spec.date_column) >= F.lit(start)) & (F.col(spec.date_column) < F.lit(end)))
    problems: list[str] = []
    checks = spec.checks
    silver_rows: DataFrame | None = None
    if checks.reconcile is not None:
        silver_rows = _silver_or_empty(spark, settings, checks.reconcile.silver_source, start, end)
    stats = rows.agg(
        F.count(F.lit(1)).alias("n"),
        F.count_distinct(*[F.col(c) for c in spec.grain]).alias("keys"),
        *([F.expr(checks.reconcile.gold).alias("gold_total")] if checks.reconcile else []),
    ).first()
    assert stats is not None
    if checks.expect_rows and stats["n"] == 0 and spec.load_mode == "full":
        problems.append(f"{spec.name}: the full-refresh mart has 0 rows")
    elif checks.expect_rows and stats["n"] == 0:
        has_input = silver_rows is not None and silver_rows.limit(1).count() > 0
        if has_input:
            problems.append(f"{spec.name}: 0 rows for {start}..{end} although Silver has events in it")
    if checks.unique_keys and stats["keys"] != stats["n"]:
        problems.append(f"{spec.name}: {stats['n'] - stats['keys']} duplicate key(s) on grain {spec.grain}")
    if checks.reconcile is not None and silver_rows is not None:
        silver_total = silver_rows.agg(F.expr(checks.reconcile.silver).alias("t")).first()
        expected = float((silver_total["t"] if silver_total else None) or 0)
        actual = float(stats["gold_total"] or 0)
        if abs(expected - actual) > checks.reconcile.tolerance:
            problems.append(
                f"{spec.name}: reconciliation failed: Gold {checks.reconcile.gold} = {actual} but "
                f"Silver {checks.reconcile.silver} = {expected}"
            )
    return problems


def load(spark: SparkSession, settings: Settings, spec: MartSpec, start: date, end: date, dsn: str) -> int:
    """Load the interval into PostgreSQL (COPY into staging, swap in one transaction)."""
    from lakehouse.postgres.loader import load_mart

    result = load_mart(settings, spec.name, start, end, dsn=dsn, spark=spark)
    log.info("%s", result.summary())
    return result.rows


def main(argv: list[str]) -> None:
    """Parse the command line and run one action."""
    parser = argparse.ArgumentParser(prog="gold", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("action", choices=("build", "check", "load", "all"))
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
    spark = get_spark(f"lakehouse-gold-{spec.name}")
    if args.action in ("build", "all"):
        build(spark, settings, spec, args.start, args.end)
    if args.action in ("check", "all"):
        problems = check(spark, settings, spec, args.start, args.end)
        if problems:
            from lakehouse.postgres.errors import DataQualityError

            raise DataQualityError("DQ gate failed, nothing loaded: " + "; ".join(problems))
        log.info("DQ gate passed for %s %s..%s", spec.name, args.start, args.end)
    if args.action in ("load", "all"):
        load(spark, settings, spec, args.start, args.end, os.environ.get(args.dsn_env) or settings.postgres_dsn())


if __name__ == "__main__":
    run_job(main)
