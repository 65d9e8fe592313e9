"""Streaming job: one query per event type reads its Kafka topic and writes, from the same micro-batch,

* ``bronze/<table>``: every message raw, with its Kafka coordinates and envelope hints;
* ``bronze/_dead_letters``: the messages that cannot be events, with a reason;
* ``silver/<table>``: typed, validated, deduplicated, enriched events (partitioned by tenant and event date);
* ``silver/_quarantine``: events breaking their contract or a data-quality rule, with every broken rule.

The Kafka value is parsed once per micro-batch. Each write is an idempotent Delta append keyed by the
checkpoint's id and the batch id, so a batch replayed after a crash writes nothing twice.

spark-submit spark/jobs/stream.py [--event-type orders] [--available-now]
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lakehouse.config.settings import Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.config.specs import EventTypeSpec
from lakehouse.spark.io import kafka as kafka_io
from lakehouse.spark.io import reference
from lakehouse.spark.io.checkpoint import batch_offsets
from lakehouse.spark.io.delta import append_once, read_table
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
from lakehouse.spark.transforms import bronze, silver

log = logging.getLogger(__name__)
DEAD_LETTER_TABLE = "_dead_letters"
QUARANTINE_TABLE = "_quarantine"


def query_name(spec: EventTypeSpec) -> str:
    """The streaming query (and checkpoint) name of an event type."""
    return f"stream_{spec.name}"


@dataclass
class _Counted:
    """Aggregates observed while a frame is written; ``values`` stays empty when the write was skipped."""

    name: str
    aggregates: dict[str, Column]
    observation: Observation = field(init=False)

    def __post_init__(self) -> None:
        self.observation = Observation(f"{self.name}-{uuid.uuid4().hex}")

    def on(self, frame: DataFrame) -> DataFrame:
        return frame.observe(self.observation, *[agg.alias(name) for name, agg in self.aggregates.items()])

    def values(self) -> dict[str, object]:
        # a skipped append runs no query, so nothing is observed, and Observation.get would wait forever
        jvm_observation = getattr(self.observation, "_jo", None)
        if jvm_observation is None or not jvm_observation.future().isCompleted():
            return {}
        return dict(self.observation.get)


class TopicBatchWriter:
    """foreachBatch handler of one event type: Bronze, dead letters, Silver and quarantine from one micro-batch,
    then the batch's audit row. Replays compute the same rows (the Silver rows of the batch's own earlier attempt
    are left out of the duplicate lookup) and every append already committed is skipped."""

    def __init__(self, settings: Settings, spec: EventTypeSpec, app_id: str, checkpoint: str) -> None:
        self.settings = settings
        self.spec = spec
        self.app_id = app_id
        self.checkpoint = checkpoint
        self.query = query_name(spec)
        lake = settings.storage
        self.bronze_path = lake.table_path("bronze", spec.tables.bronze)
        self.silver_path = lake.table_path("silver", spec.tables.silver)
        self.dead_letter_path = lake.table_path("bronze", DEAD_LETTER_TABLE)
        self.quarantine_path = lake.table_path("silver", QUARANTINE_TABLE)

    def _existing_keys(self, spark: SparkSession, dates: list[object], batch_tag: str) -> DataFrame | None:
        """Silver's keys on the batch's event dates, without the rows an earlier attempt of this batch wrote."""
        table = read_table(spark, self.silver_path) if dates else None
        if table is None:
            return None
        return table.where(F.col("event_date").isin(dates) & (F.col("_silver_batch") != batch_tag)).select(
            self.spec.dedup_key, "event_date"
        )

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Process one micro-batch."""
        spark = batch.sparkSession
        audit = BatchAudit(self.query, "bronze+silver", self.spec.topic, self.app_id, batch_id, started_at=now_utc())
        spec = self.spec
        # parsed once and kept: four writes read it
        rows = bronze.classify(
            bronze.from_kafka(batch), spec.event_types, spec.versions, spec.max_message_bytes, keep_parsed=True
        ).persist()
        try:
            self._write(spark, rows, batch_id, audit)
        finally:
            rows.unpersist()
        audit.offset_ranges = json.dumps(batch_offsets(spark, self.checkpoint, batch_id).ranges(), sort_keys=True)
        audit.finish(self.settings)
        log.info(
            "%s batch %d: %d in, %d to Silver, %d dead letters, %d quarantined, %d duplicates",
            self.query,
            batch_id,
            audit.input_rows,
            audit.output_rows,
            audit.dead_letter_rows,
            audit.quarantined_rows,
            audit.deduplicated_rows,
        )

    def _write(self, spark: SparkSession, rows: DataFrame, batch_id: int, audit: BatchAudit) -> None:
        spec = self.spec
        landed = _Counted("bronze", {"rows": F.count(F.lit(1)), "dead": F.count("error_class")})
        append_once(
            landed.on(rows.drop(bronze.PARSED)), self.bronze_path, self.app_id, batch_id, partition_by=("ingest_date",)
        )
        counts = landed.values() or {  # a replay whose Bronze append was committed before
            "rows": rows.count(),
            "dead": rows.where(F.col("error_class").isNotNull()).count(),
        }
        audit.input_rows, audit.dead_letter_rows = int(str(counts["rows"])), int(str(counts["dead"]))
        if audit.input_rows == 0:
            return
        if audit.dead_letter_rows:
            append_once(
                bronze.dead_letters(rows).withColumn("source", F.lit(spec.name)),
                self.dead_letter_path,
                f"{self.app_id}:{spec.name}",
                batch_id,
                partition_by=("ingest_date",),
            )

        events = silver.apply_quality_rules(silver.parse_events(rows, spec), spec)
        checked = _Counted(
            "silver",
            {
                "bad": F.count(F.when(F.size("_violations") > 0, 1)),
                "min_ts": F.min("event_timestamp"),
                "max_ts": F.max("event_timestamp"),
            },
        )
        # the dates a batch's accepted events fall on bound the duplicate lookup; a small job on the cached rows
        dates = sorted(
            {r[0] for r in silver.accepted(events).select("event_date").distinct().collect() if r[0] is not None}
        )
        batch_tag = f"{self.app_id}:{batch_id}"
        good = silver.first_per_key(silver.accepted(checked.on(events)), spec.dedup_key)
        existing = self._existing_keys(spark, dates, batch_tag)
        if existing is not None:
            good = silver.not_already_in(good, existing, spec.dedup_key)
        references = {j.reference: reference.current(spark, self.settings, j.reference) for j in spec.enrich}
        enriched = (
            silver.enrich(good, spec, references)
            .withColumn("_silver_batch", F.lit(batch_tag))
            .withColumn("_processed_at", F.current_timestamp())
        )
        # the commit names its batch, so the time rows became visible can be read from the table's history
        commit_tag = json.dumps({"query": self.query, "app_id": self.app_id, "batch_id": batch_id})
        appended = append_once(enriched, self.silver_path, self.app_id, batch_id, spec.partition_by, commit_tag)
        # a replayed batch computes the rows its first attempt appended (see the class docstring)
        audit.output_rows = appended if appended is not None else enriched.count()
        observed = checked.values()
        bad = int(str(observed["bad"])) if observed else events.where(F.size("_violations") > 0).count()
        if bad:
            append_once(
                silver.quarantined(events, spec.name),
                self.quarantine_path,
                f"{self.app_id}:{spec.name}",
                batch_id,
                partition_by=("source", "ingest_date"),
            )
        audit.quarantined_rows = bad
        audit.deduplicated_rows = audit.input_rows - audit.dead_letter_rows - bad - audit.output_rows
        if observed:
            audit.min_event_time = observed["min_ts"]  # type: ignore[assignment]
            audit.max_event_time = observed["max_ts"]  # type: ignore[assignment]


def start(
    spark: SparkSession,
    settings: Settings,
    spec: EventTypeSpec,
    available_now: bool,
    trigger_seconds: float = 2.0,
    max_records: int | None = 200_000,
) -> StreamingQuery:
    """Start the query of one event type."""
    lake = settings.storage
    name = query_name(spec)
    checkpoint, app_id = prepare_query(
        spark,
        settings,
        name,
        [
            SharedTable(lake.table_path("bronze", spec.tables.bronze), bronze.BRONZE_SCHEMA, ("ingest_date",)),
            SharedTable(lake.table_path("bronze", DEAD_LETTER_TABLE), bronze.DEAD_LETTER_SCHEMA, ("ingest_date",)),
            SharedTable(
                lake.table_path("silver", QUARANTINE_TABLE), silver.QUARANTINE_SCHEMA, ("source", "ingest_date")
            ),
        ],
    )
    stream = kafka_io.read_stream(spark, settings, spec.topic, max_records)
    return start_query(
        stream, name, checkpoint, TopicBatchWriter(settings, spec, app_id, checkpoint), available_now, trigger_seconds
    )


def main(argv: list[str]) -> None:
    """Parse the command line, refresh reference data and run one query per event type."""
    args = streaming_arguments("stream", __doc__ or "").parse_args(argv)
    settings = current_settings()
    specs = selected_specs(args.event_type)
    spark = get_spark("lakehouse-stream", own_driver=True)
    reference.refresh(spark, settings, [j.reference for spec in specs for j in spec.enrich])
    queries = [
        start(spark, settings, spec, args.available_now, args.trigger_seconds, args.max_records_per_batch)
        for spec in specs
    ]
    await_queries(spark, queries, args.available_now)


if __name__ == "__main__":
    run_job(main)
