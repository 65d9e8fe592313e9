"""Silver streaming job: Bronze rows -> one typed, validated, deduplicated, enriched Delta table per event type
(``silver/<table>``, partitioned by tenant and event date). Rows breaking the contract or a data-quality rule go
to ``silver/_quarantine`` with the name of every broken rule; duplicates of an ``event_id`` are dropped.

spark-submit spark/jobs/silver.py [--event-type orders] [--available-now]
"""

from __future__ import annotations

import json
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lakehouse.config.settings import Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.config.specs import EventTypeSpec
from lakehouse.spark.io import reference
from lakehouse.spark.io.delta import append_once, table_exists
from lakehouse.spark.jobs.common import (
    BatchAudit,
    SharedTable,
    await_queries,
    now_utc,
    prepare_query,
    run_job,
    selected_specs,
    start_query,
    streaming_arguments,
)
from lakehouse.spark.session import get_spark
from lakehouse.spark.transforms import silver

log = logging.getLogger(__name__)
QUARANTINE_TABLE = "_quarantine"


class SilverBatchWriter:
    """foreachBatch handler: quarantine, deduplicate against Silver, enrich, append; audit. Replays of a batch
    compute the same rows (Silver rows of the batch's own earlier attempt are excluded from the duplicate
    lookup) and every append is skipped if that batch was already committed."""

    def __init__(self, settings: Settings, spec: EventTypeSpec, app_id: str) -> None:
        self.settings = settings
        self.spec = spec
        self.app_id = app_id
        self.query = f"silver_{spec.name}"
        self.silver_path = settings.storage.table_path("silver", spec.tables.silver)

    def _existing_keys(self, spark: SparkSession, dates: list[object], batch_tag: str) -> DataFrame | None:
        if not dates or not table_exists(spark, self.silver_path):
            return None
        return (
            spark.read.format("delta")
            .load(self.silver_path)
            .where(F.col("event_date").isin(dates) & (F.col("_silver_batch") != batch_tag))
            .select(self.spec.dedup_key)
        )

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Process one micro-batch."""
        spark = batch.sparkSession
        audit = BatchAudit(
            self.query, "silver", f"bronze/{self.spec.tables.bronze}", self.app_id, batch_id, started_at=now_utc()
        )
        batch_tag = f"{self.app_id}:{batch_id}"
        events = silver.apply_quality_rules(silver.parse_events(batch, self.spec), self.spec).persist()
        try:
            stats = (
                events.groupBy("_kafka_partition")
                .agg(
                    F.count(F.lit(1)).alias("rows"),
                    F.count(F.when(F.size("_violations") > 0, 1)).alias("bad"),
                    F.min("_kafka_offset").alias("first"),
                    F.max("_kafka_offset").alias("last"),
                    F.min("event_timestamp").alias("min_ts"),
                    F.max("event_timestamp").alias("max_ts"),
                    F.max("_ingested_at").alias("max_ingested"),
                    F.collect_set("event_date").alias("dates"),
                )
                .collect()
            )
            if stats:
                bad = sum(int(s["bad"]) for s in stats)
                if bad:
                    append_once(
                        silver.quarantined(events, self.spec.name),
                        self.settings.storage.table_path("silver", QUARANTINE_TABLE),
                        f"{self.app_id}:{self.spec.name}",
                        batch_id,
                        partition_by=("source", "ingest_date"),
                    )
                good = silver.first_per_key(silver.accepted(events), self.spec.dedup_key)
                dates = sorted({d for s in stats for d in s["dates"] if d is not None})
                existing = self._existing_keys(spark, dates, batch_tag)
                if existing is not None:
                    good = silver.not_already_in(good, existing, self.spec.dedup_key)
                references = {
                    j.reference: reference.current(spark, self.settings, j.reference) for j in self.spec.enrich
                }
                rows = (
                    silver.enrich(good, self.spec, references)
                    .withColumn("_silver_batch", F.lit(batch_tag))
                    .withColumn("_processed_at", F.current_timestamp())
                )
                # not cached: a cached frame that reads Silver would be planned again after the append to Silver
                appended = append_once(rows, self.silver_path, self.app_id, batch_id, self.spec.partition_by)
                # a replayed batch computes the rows its first attempt appended (see the class docstring)
                written = appended if appended is not None else rows.count()
                audit.input_rows = sum(int(s["rows"]) for s in stats)
                audit.quarantined_rows = bad
                audit.output_rows = written
                audit.deduplicated_rows = audit.input_rows - bad - written
                audit.offset_ranges = json.dumps(
                    {f"{self.spec.topic}-{s['_kafka_partition']}": [s["first"], s["last"]] for s in stats},
                    sort_keys=True,
                )
                event_times = [t for s in stats for t in (s["min_ts"], s["max_ts"]) if t is not None]
                audit.min_event_time = min(event_times) if event_times else None
                audit.max_event_time = max(event_times) if event_times else None
            audit.finish(self.settings)
        finally:
            events.unpersist()
        log.info(
            "%s batch %d: %d in, %d out, %d quarantined, %d duplicates",
            self.query,
            batch_id,
            audit.input_rows,
            audit.output_rows,
            audit.quarantined_rows,
            audit.deduplicated_rows,
        )


def start(
    spark: SparkSession,
    settings: Settings,
    spec: EventTypeSpec,
    available_now: bool,
    trigger_seconds: float = 2.0,
) -> StreamingQuery:
    """Start the Silver query of one event type (reads the Bronze table as a stream; a micro-batch takes the
    Bronze commits made since the last one, so Bronze's per-batch record limit bounds Silver's too)."""
    quarantine = SharedTable(
        settings.storage.table_path("silver", QUARANTINE_TABLE), silver.QUARANTINE_SCHEMA, ("source", "ingest_date")
    )
    checkpoint, app_id = prepare_query(spark, settings, f"silver_{spec.name}", [quarantine])
    bronze_path = settings.storage.table_path("bronze", spec.tables.bronze)
    stream = spark.readStream.format("delta").load(bronze_path)
    return start_query(
        stream,
        f"silver_{spec.name}",
        checkpoint,
        SilverBatchWriter(settings, spec, app_id),
        available_now,
        trigger_seconds,
    )


def main(argv: list[str]) -> None:
    """Parse the command line, refresh reference data and run the Silver queries."""
    args = streaming_arguments("silver", __doc__ or "").parse_args(argv)
    settings = current_settings()
    specs = selected_specs(args.event_type)
    spark = get_spark("lakehouse-silver", own_driver=True)
    reference.refresh(spark, settings, [j.reference for spec in specs for j in spec.enrich])
    missing = [s.name for s in specs if not table_exists(spark, settings.storage.table_path("bronze", s.tables.bronze))]
    if missing:
        log.warning("no Bronze table yet for %s: run the Bronze job first; skipping them", missing)
    queries = [
        start(spark, settings, spec, args.available_now, args.trigger_seconds)
        for spec in specs
        if spec.name not in missing
    ]
    await_queries(spark, queries, args.available_now)


if __name__ == "__main__":
    run_job(main)
