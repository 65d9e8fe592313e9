"""Bronze streaming job: every Kafka message of every event type lands raw in ``bronze/<table>`` with its
coordinates; messages that cannot be events also land in ``bronze/_dead_letters`` with a reason.

spark-submit spark/jobs/bronze.py [--event-type orders] [--available-now]
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
from lakehouse.spark.io import kafka as kafka_io
from lakehouse.spark.io.delta import append_once
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
from lakehouse.spark.transforms import bronze

log = logging.getLogger(__name__)
DEAD_LETTER_TABLE = "_dead_letters"


class BronzeBatchWriter:
    """foreachBatch handler: Bronze append, dead-letter append and audit row, each idempotent per batch."""

    def __init__(self, settings: Settings, spec: EventTypeSpec, app_id: str) -> None:
        self.settings = settings
        self.spec = spec
        self.app_id = app_id
        self.query = f"bronze_{spec.name}"

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Process one micro-batch."""
        audit = BatchAudit(self.query, "bronze", self.spec.topic, self.app_id, batch_id, started_at=now_utc())
        rows = bronze.classify(
            bronze.from_kafka(batch), self.spec.event_types, self.spec.versions, self.spec.max_message_bytes
        ).persist()
        try:
            stats = (
                rows.groupBy("partition")
                .agg(
                    F.count(F.lit(1)).alias("rows"),
                    F.count("error_class").alias("dead"),
                    F.min("offset").alias("first"),
                    F.max("offset").alias("last"),
                    F.min("kafka_timestamp").alias("min_ts"),
                    F.max("kafka_timestamp").alias("max_ts"),
                )
                .collect()
            )
            if stats:
                append_once(
                    rows,
                    self.settings.storage.table_path("bronze", self.spec.tables.bronze),
                    self.app_id,
                    batch_id,
                    partition_by=("ingest_date",),
                )
                dead = sum(int(s["dead"]) for s in stats)
                if dead:
                    append_once(
                        bronze.dead_letters(rows).withColumn("source", F.lit(self.spec.name)),
                        self.settings.storage.table_path("bronze", DEAD_LETTER_TABLE),
                        f"{self.app_id}:{self.spec.name}",
                        batch_id,
                        partition_by=("ingest_date",),
                    )
                audit.input_rows = audit.output_rows = sum(int(s["rows"]) for s in stats)
                audit.dead_letter_rows = dead
                audit.offset_ranges = json.dumps(
                    {f"{self.spec.topic}-{s['partition']}": [s["first"], s["last"]] for s in stats}, sort_keys=True
                )
                audit.min_event_time = min(s["min_ts"] for s in stats)
                audit.max_event_time = max(s["max_ts"] for s in stats)
            audit.finish(self.settings)
        finally:
            rows.unpersist()
        log.info(
            "%s batch %d: %d rows, %d dead letters", self.query, batch_id, audit.input_rows, audit.dead_letter_rows
        )


def start(
    spark: SparkSession,
    settings: Settings,
    spec: EventTypeSpec,
    available_now: bool,
    trigger_seconds: float = 2.0,
    max_records: int | None = 200_000,
) -> StreamingQuery:
    """Start the Bronze query of one event type."""
    lake = settings.storage
    checkpoint, app_id = prepare_query(
        spark,
        settings,
        f"bronze_{spec.name}",
        [
            SharedTable(lake.table_path("bronze", spec.tables.bronze), bronze.BRONZE_SCHEMA, ("ingest_date",)),
            SharedTable(lake.table_path("bronze", DEAD_LETTER_TABLE), bronze.DEAD_LETTER_SCHEMA, ("ingest_date",)),
        ],
    )
    stream = kafka_io.read_stream(spark, settings, spec.topic, max_records)
    return start_query(
        stream,
        f"bronze_{spec.name}",
        checkpoint,
        BronzeBatchWriter(settings, spec, app_id),
        available_now,
        trigger_seconds,
    )


def main(argv: list[str]) -> None:
    """Parse the command line and run the Bronze queries."""
    args = streaming_arguments("bronze", __doc__ or "").parse_args(argv)
    settings = current_settings()
    specs = selected_specs(args.event_type)
    spark = get_spark("lakehouse-bronze", own_driver=True)
    queries = [
        start(spark, settings, spec, args.available_now, args.trigger_seconds, args.max_records_per_batch)
        for spec in specs
    ]
    await_queries(spark, queries, args.available_now)


if __name__ == "__main__":
    run_job(main)
