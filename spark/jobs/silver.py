"""Silver rebuild (batch): recompute ``silver/<table>`` and the event type's rows of ``silver/_quarantine`` from
Bronze, with the current contracts, data-quality rules and reference data. Run it after fixing a rule or a
contract, with the event type's stream stopped; it keeps the copy of each event the stream kept (the first in
ingest order), so on unchanged rules it gives the stream's rows.

spark-submit spark/jobs/silver.py [--event-type orders]
"""

from __future__ import annotations

import argparse
import logging
import uuid

from pyspark.sql import SparkSession

from lakehouse.config.settings import Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.config.specs import EventTypeSpec
from lakehouse.spark.io import reference
from lakehouse.spark.io.delta import ensure_table, read_table, save
from lakehouse.spark.jobs.common import ensure_silver_table, run_job, scoring_model, selected_specs
from lakehouse.spark.jobs.stream import QUARANTINE_TABLE
from lakehouse.spark.session import get_spark
from lakehouse.spark.transforms import silver

log = logging.getLogger(__name__)


def rebuild(spark: SparkSession, settings: Settings, spec: EventTypeSpec) -> None:
    """Replace the event type's Silver table and its quarantine rows, each in one atomic commit."""
    lake = settings.storage
    landed = read_table(spark, lake.table("bronze", spec.tables.bronze))
    if landed is None:
        log.warning("no Bronze table for %s yet: nothing to rebuild", spec.name)
        return
    events = silver.apply_quality_rules(silver.parse_events(landed, spec), spec)
    good = silver.first_per_key(silver.accepted(events), spec.dedup_key)
    references = {j.reference: reference.current(spark, settings, j.reference) for j in spec.enrich}
    rows = silver.silver_rows(good, spec, references, f"rebuild:{uuid.uuid4()}", scoring_model(settings, spec))
    table = lake.table("silver", spec.tables.silver)
    ensure_silver_table(spark, table, rows, spec.partition_by)
    save(
        spark,
        rows.write.format("delta").mode("overwrite").option("overwriteSchema", "false").partitionBy(*spec.partition_by),
        table,
    )
    quarantine = lake.table("silver", QUARANTINE_TABLE)
    ensure_table(spark, quarantine, silver.QUARANTINE_SCHEMA, ("source", "ingest_date"))
    save(
        spark,
        silver.quarantined(events, spec.name)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"source = '{spec.name}'"),
        quarantine,
    )
    log.info("rebuilt Silver and the quarantine of %s from Bronze", spec.name)


def main(argv: list[str]) -> None:
    """Parse the command line and rebuild Silver for the chosen event types."""
    parser = argparse.ArgumentParser(prog="silver", description=__doc__)
    parser.add_argument(
        "--event-type",
        action="append",
        default=[],
        help="event type to rebuild (repeatable; default: every type in config/event_types)",
    )
    args = parser.parse_args(argv)
    settings = current_settings()
    specs = selected_specs(args.event_type)
    spark = get_spark("lakehouse-silver-rebuild", own_driver=True)
    reference.refresh(spark, settings, [j.reference for spec in specs for j in spec.enrich])
    for spec in specs:
        rebuild(spark, settings, spec)


if __name__ == "__main__":
    run_job(main)
