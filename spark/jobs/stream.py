"""Streaming job: one query per event type reads its Kafka topic and writes, from the same micro-batch,

* ``bronze/<table>``: every message raw, with its Kafka coordinates and envelope hints;
* ``bronze/_dead_letters``: the messages that cannot be events, with a reason;
* ``silver/<table>``: typed, validated, deduplicated, enriched events (partitioned by tenant and event date);
* ``silver/_quarantine``: events breaking their contract or a data-quality rule, with every broken rule.

Each Kafka value is read once per micro-batch, in one pass that parses it twice: into a variant (classification,
JSON types) and with the contract's types (typed values). Each write is an idempotent Delta append keyed by the
checkpoint's id and the batch id, so a batch replayed after a crash writes nothing twice.

spark-submit spark/jobs/stream.py [--event-type orders] [--available-now]
"""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import cast

from pyspark import inheritable_thread_target
from pyspark.errors import StreamingQueryException
from pyspark.sql import Column, DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StructType

from lakehouse.config.settings import Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.config.specs import EventTypeSpec
from lakehouse.postgres.stream_audit import check_audit_table
from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.io import kafka as kafka_io
from lakehouse.spark.io import reference
from lakehouse.spark.io.checkpoint import batch_offsets, has_batches, state_operator
from lakehouse.spark.io.delta import AppendLedger, append_once, observed, table_is_empty
from lakehouse.spark.jobs.common import (
    STATE_STORE_CONF,
    BatchAudit,
    SharedTable,
    await_queries,
    ensure_silver_table,
    now_utc,
    prepare_query,
    run_job,
    scoring_model,
    selected_specs,
    start_query,
    streaming_arguments,
)
from lakehouse.spark.jobs.late_keys import LateKeyIndex
from lakehouse.spark.session import get_spark
from lakehouse.spark.timer_dedup import operator_of_checkpoint
from lakehouse.spark.transforms import bronze, silver
from lakehouse.spark.transforms.literals import batch_value

log = logging.getLogger(__name__)
DEAD_LETTER_TABLE = "_dead_letters"
QUARANTINE_TABLE = "_quarantine"
# Bronze, dead letters and quarantine, which the stream only appends to: a Delta checkpoint every 100 commits rather
# than 10 (each one rebuilds the table's state, seconds per table on two cores); a new reader replays at most 99
# small commit files. Silver has the same interval (SILVER_PROPERTIES).
APPEND_ONLY_PROPERTIES = (("delta.checkpointInterval", "100"),)
# up to this many dead letters (or quarantined events) in a batch are written by one task
ONE_TASK_ROWS = 50_000


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
        return observed(self.observation)


def keyed_stream(kafka: DataFrame, spec: EventTypeSpec) -> DataFrame:
    """The query's plan up to its micro-batches: every message classified and parsed in one pass, then deduplicated.

    Each message becomes a ``_row`` (its Bronze columns in ``_bronze`` and, for events, the typed and checked
    Silver columns). An accepted event also yields a key row ``(_k1, _k2) = (dedup key, event_date)`` with its
    event time ``_t``. ``dropDuplicatesWithinWatermark`` keeps a key row only the first time its key is seen
    within the event type's ``dedup_watermark``, in a RocksDB state store (planned as the timer dedup where it is
    loaded, ``lakehouse.spark.timer_dedup``); message rows carry a key of their own and no event time, so they all
    pass (Spark's own operator holds them until its next eviction, the timer dedup not at all). Key rows at or
    before the watermark are dropped by the operator: the batch checks those events against Silver instead."""
    rows = bronze.classify(
        bronze.from_kafka(kafka), spec.event_types, spec.versions, spec.max_message_bytes, keep_parsed=True
    )
    events = silver.apply_quality_rules(silver.parse_events(rows, spec, carry_bronze=True), spec)
    row = F.struct(*[F.col(c) for c in events.columns])
    message = F.struct(
        F.concat_ws(":", F.col(f"{silver.BRONZE}.partition"), F.col(f"{silver.BRONZE}.offset")).alias("_k1"),
        F.lit(None).cast("date").alias("_k2"),
        F.lit(None).cast("timestamp").alias("_t"),
        row.alias("_row"),
    )
    key = F.struct(
        F.col(spec.dedup_key).cast("string").alias("_k1"),
        F.col("event_date").alias("_k2"),
        F.col("event_timestamp").alias("_t"),
        F.when(F.lit(False), row).alias("_row"),
    )
    copies = F.when(silver.is_accepted_row(), F.array(message, key)).otherwise(F.array(message))
    # the copies are built by a projection of their own: the stage is too big for whole-stage code generation, and
    # without it Spark's generate operator evaluates its expression row by row in its interpreter
    return (
        events.select(copies.alias("_copies"))
        .select(F.inline("_copies"))
        .withWatermark("_t", spec.dedup_watermark)
        .dropDuplicatesWithinWatermark(["_k1", "_k2"])
    )


class TopicBatchWriter:
    """foreachBatch handler of one event type: Bronze, dead letters, Silver and quarantine from one micro-batch,
    then the batch's audit row. Replays compute the same rows (the Silver rows of the batch's own earlier attempt
    are left out of the duplicate lookup) and every append already committed is skipped."""

    def __init__(
        self, settings: Settings, spec: EventTypeSpec, app_id: str, checkpoint: str, new_app_id: bool = False
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.app_id = app_id
        self.checkpoint = checkpoint
        self.query = query_name(spec)
        lake = settings.storage
        self.bronze_table = lake.table("bronze", spec.tables.bronze)
        self.silver_table = lake.table("silver", spec.tables.silver)
        self.dead_letter_table = lake.table("bronze", DEAD_LETTER_TABLE)
        self.quarantine_table = lake.table("silver", QUARANTINE_TABLE)
        # a new checkpoint's appends look up no earlier commit
        self.ledger = AppendLedger(app_id if new_app_id else None)
        self.silver_ensured = False
        self.late_keys = LateKeyIndex(self.silver_table, spec.dedup_key, spec.late_key_dates)
        self.references = reference.CurrentReferences(settings)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Process one micro-batch."""
        spark = batch.sparkSession
        audit = BatchAudit(self.query, "bronze+silver", self.spec.topic, self.app_id, batch_id, started_at=now_utc())
        with audit.timed("offsets"):
            offsets = batch_offsets(spark, self.checkpoint, batch_id)
        audit.offset_ranges = json.dumps(offsets.ranges(), sort_keys=True)
        if offsets.watermark_ms:
            audit.watermark = datetime.fromtimestamp(offsets.watermark_ms / 1000, UTC).replace(tzinfo=None)
        if audit.offset_ranges == "{}":
            # no new message (a batch that only moves the watermark on): nothing to write, but the dedup state must
            # still run, to evict what the watermark passed and commit
            with audit.timed("state"):
                batch.write.format("noop").mode("overwrite").save()
        else:
            # kept: four writes read the parsed rows, and the dedup state must be computed once
            batch.persist()
            try:
                self._write(spark, batch, batch_id, audit)
            finally:
                batch.unpersist()
        audit.finish(self.settings)
        log.info(
            "%s batch %d: %d in, %d to Silver, %d dead letters, %d quarantined, %d duplicates, %d late",
            self.query,
            batch_id,
            audit.input_rows,
            audit.output_rows,
            audit.dead_letter_rows,
            audit.quarantined_rows,
            audit.deduplicated_rows,
            audit.late_rows,
        )

    def _write(self, spark: SparkSession, batch: DataFrame, batch_id: int, audit: BatchAudit) -> None:
        spec = self.spec
        rows = batch.where(F.col("_row").isNotNull()).select("_row.*")
        # the late flag is a column, computed once per row in generated code: the observed aggregates that use it
        # are evaluated by the interpreter
        flagged = rows.withColumn("_late", late_time(audit.watermark))
        landed = _Counted("bronze", _batch_counts(spec.dedup_key))
        # the batch's first job: it also reads Kafka, parses, and runs the dedup state
        with audit.timed("bronze"):
            append_once(
                silver.bronze_rows(landed.on(flagged)),
                self.bronze_table,
                self.app_id,
                batch_id,
                partition_by=("ingest_date",),
                ledger=self.ledger,
            )
        # a replay whose Bronze append was committed before observes nothing: count with a job of its own
        with audit.timed("counts"):
            counts = landed.values() or _count(flagged, _batch_counts(spec.dedup_key))
        audit.input_rows = int(str(counts["rows"]))
        if audit.input_rows == 0:
            return
        audit.dead_letter_rows = int(str(counts["dead"]))
        audit.quarantined_rows = int(str(counts["bad"]))
        audit.late_rows = int(str(counts["late"]))
        audit.min_event_time = cast(datetime | None, counts["min_ts"])
        audit.max_event_time = cast(datetime | None, counts["max_ts"])
        existing = None
        if audit.late_rows:
            with audit.timed("late_keys"):
                late_dates = sorted(cast(list[date], counts["late_dates"]))
                late_keys = cast(list[str], counts["late_keys"])
                existing = self.late_keys.keys(spark, late_dates, batch_id, f"{self.app_id}:{batch_id}", late_keys)
        # the keys this batch adds to Silver on the dates the late-event index holds, gathered by Silver's write
        held = sorted(self.late_keys.dates & set(cast(list[date], counts["dates"])))
        new_keys: list[DataFrame | None] = []
        # the other writes depend on nothing but the cached batch: run them at once, each an idempotent commit
        writes: dict[str, Callable[[], object]] = {
            "silver": functools.partial(self._write_silver, spark, batch, batch_id, audit, existing, held, new_keys)
        }
        # each write builds its frame in its own thread: building is a JVM round trip per call, and Silver's write
        # (the batch's critical path) should not wait for the others' plans
        if audit.dead_letter_rows:
            writes["dead_letters"] = lambda: append_once(
                _in_few_files(
                    bronze.dead_letters(silver.bronze_rows(rows)).withColumn("source", F.lit(spec.name)),
                    audit.dead_letter_rows,
                ),
                self.dead_letter_table,
                f"{self.app_id}:{spec.name}",
                batch_id,
                partition_by=("ingest_date",),
                ledger=self.ledger,
            )
        if audit.quarantined_rows:
            writes["quarantine"] = lambda: append_once(
                _in_few_files(silver.quarantined(silver.candidate_events(rows), spec.name), audit.quarantined_rows),
                self.quarantine_table,
                f"{self.app_id}:{spec.name}",
                batch_id,
                partition_by=("source", "ingest_date"),
                ledger=self.ledger,
            )

        def timed_write(phase: str, write: Callable[[], object]) -> Callable[[], None]:
            def run() -> None:
                with audit.timed(phase):
                    write()

            return inheritable_thread_target(spark)(run)

        with ThreadPoolExecutor(max_workers=len(writes), thread_name_prefix=self.query) as pool:
            for done in [pool.submit(timed_write(phase, write)) for phase, write in writes.items()]:
                done.result()
        for keys in new_keys:
            self.late_keys.add(keys)  # in Silver now
        audit.deduplicated_rows = audit.input_rows - audit.dead_letter_rows - audit.quarantined_rows - audit.output_rows

    def _write_silver(
        self,
        spark: SparkSession,
        batch: DataFrame,
        batch_id: int,
        audit: BatchAudit,
        existing: DataFrame | None,
        held: list[date],
        new_keys: list[DataFrame | None],
    ) -> None:
        """Silver's append; with ``held`` dates, the keys it adds on them go to ``new_keys``."""
        spec = self.spec
        batch_tag = f"{self.app_id}:{batch_id}"
        with audit.timed("silver_lookups"):
            references = {j.reference: self.references.current(spark, j.reference) for j in spec.enrich}
            model = scoring_model(self.settings, spec)
        audit.model_version = model.version if model else None
        timing = Observation(f"scoring-{uuid.uuid4().hex}") if model else None
        deduplicated = first_new_per_key(batch, spec.dedup_key, audit.watermark, existing)
        enriched = silver.silver_rows(deduplicated, spec, references, batch_tag, model, timing)
        if not self.silver_ensured:
            ensure_silver_table(spark, self.silver_table, enriched, spec.partition_by)
            self.silver_ensured = True
        # the commit names its batch, so the time rows became visible can be read from the table's history
        commit_tag = {"query": self.query, "app_id": self.app_id, "batch_id": batch_id}
        learnt = _Counted("learnt", self.late_keys.observed(held)) if held else None
        appended = append_once(
            learnt.on(enriched) if learnt else enriched,
            self.silver_table,
            self.app_id,
            batch_id,
            spec.partition_by,
            commit_tag,
            self.ledger,
        )
        if learnt is not None:
            with audit.timed("late_keys_new"):
                keys = self.late_keys.from_observed(spark, learnt.values())
                new_keys.append(keys if keys is not None else self.late_keys.new_keys(enriched, held))
        # a replayed batch computes the rows its first attempt appended (see the class docstring)
        audit.output_rows = appended if appended is not None else enriched.count()
        scoring = observed(timing) if timing is not None else {}
        if scoring:
            audit.scored_rows = int(scoring["scored_rows"])
            audit.scoring_ms = round(float(scoring["scoring_ms"]), 3)


def first_new_per_key(
    batch: DataFrame, key: str, watermark: datetime | None, silver_keys: DataFrame | None
) -> DataFrame:
    """The accepted events of a micro-batch that go to Silver, as ``silver.accepted`` gives them: of each key and
    event date, the first copy (``silver.first_per_key``'s order), when the dedup state let the key through in this
    batch (a key row), or when the event is late (the state may have forgotten its key) and ``silver_keys`` (Silver's
    keys on the late events' dates, as ``key`` and ``event_date``) does not hold it. ``silver_keys`` is read by one
    task and joined as it is (broadcast when the index narrowed it to the batch's late keys, else as Spark decides by
    its size): a key held twice only
    repeats rows of which the rank keeps the same one, and a ``distinct`` would cost a task per partition and a
    shuffle in every batch (docs/timings.md).

    ``batch`` is read once, in one window over its events and key rows together: a second reference (a join or a
    union of two frames read from it) gets new column ids from Spark, misses the batch's cache and runs the whole
    micro-batch again (Kafka read, parse, dedup state, whose store then reloads)."""
    is_key = F.col("_row").isNull()
    frame = batch.select(is_key.alias("_is_key"), "_k1", "_k2", "_row.*").where(
        F.col("_is_key") | silver.is_accepted_row()
    )
    frame = frame.withColumns(
        {
            "_key": F.when(F.col("_is_key"), F.col("_k1")).otherwise(F.col(key).cast("string")),
            "event_date": F.when(F.col("_is_key"), F.col("_k2")).otherwise(F.col("event_date")),
            "_late": ~F.col("_is_key") & late_time(watermark),
        }
    ).drop("_k1", "_k2")
    new_late = F.col("_late")
    if silver_keys is not None:
        in_silver = silver_keys.coalesce(1).select(
            F.col(key).cast("string").alias("_key"), "event_date", F.lit(True).alias("_in_silver")
        )
        frame = frame.join(in_silver, ["_key", "event_date"], "left")
        new_late = new_late & F.col("_in_silver").isNull()
    group = Window.partitionBy("_key", "event_date")
    order = group.orderBy(*silver.ARRIVAL_ORDER)
    kept = (
        frame.withColumn("_has_key", F.max("_is_key").over(group))
        .where(~F.col("_is_key") & (F.col("_has_key") | new_late))
        .withColumn("_rank", F.row_number().over(order))
        .where("_rank = 1")
    )
    row = batch.schema["_row"].dataType
    assert isinstance(row, StructType)
    return kept.select(*[name for name in row.names if name not in (silver.BRONZE, *silver.CHECK_COLUMNS)])


def _in_few_files(frame: DataFrame, rows: int) -> DataFrame:
    """``frame`` written by one task, into one file per partition, when it holds few rows: dead letters and
    quarantine are a small share of most batches, and a task per Kafka partition would write a file each."""
    return frame.coalesce(1) if rows <= ONE_TASK_ROWS else frame


def _batch_counts(key: str) -> dict[str, Column]:
    """What the audit needs of a batch's message rows (with their ``_late`` flag), as aggregates, and the keys of
    its late events (``key``, as strings), which the duplicate lookup in Silver is narrowed to."""
    accepted = silver.is_accepted_row()
    late = accepted & F.col("_late")
    return {
        "rows": F.count(F.lit(1)),
        "dead": F.count(f"{silver.BRONZE}.error_class"),
        "bad": F.count(F.when(F.col(f"{silver.BRONZE}.error_class").isNull() & ~accepted, 1)),
        "late": F.count(F.when(late, 1)),
        "late_dates": F.collect_set(F.when(late, F.col("event_date"))),
        "late_keys": F.collect_set(F.when(late, F.col(key).cast("string"))),
        "dates": F.collect_set(F.when(accepted, F.col("event_date"))),
        "min_ts": F.min(F.when(accepted, F.col("event_timestamp"))),
        "max_ts": F.max(F.when(accepted, F.col("event_timestamp"))),
    }


def _count(rows: DataFrame, aggregates: dict[str, Column]) -> dict[str, object]:
    row = rows.agg(*[agg.alias(name) for name, agg in aggregates.items()]).first()
    return row.asDict() if row else {}


def late_time(watermark: datetime | None) -> Column:
    """True for an event at or before ``watermark``: the dedup state may have forgotten its key (never true
    before the first watermark)."""
    if watermark is None:
        return F.lit(False)
    return F.coalesce(F.col("event_timestamp") <= batch_value(F.lit(watermark)), F.lit(False))


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
    checkpoint, app_id, new_app_id = prepare_query(
        spark,
        settings,
        name,
        [
            SharedTable(
                lake.table("bronze", spec.tables.bronze),
                bronze.BRONZE_SCHEMA,
                ("ingest_date",),
                APPEND_ONLY_PROPERTIES,
            ),
            SharedTable(
                lake.table("bronze", DEAD_LETTER_TABLE),
                bronze.DEAD_LETTER_SCHEMA,
                ("ingest_date",),
                APPEND_ONLY_PROPERTIES,
            ),
            SharedTable(
                lake.table("silver", QUARANTINE_TABLE),
                silver.QUARANTINE_SCHEMA,
                ("source", "ingest_date"),
                APPEND_ONLY_PROPERTIES,
            ),
        ],
    )
    silver_table = lake.table("silver", spec.tables.silver)
    if not has_batches(spark, checkpoint) and not table_is_empty(spark, silver_table):
        raise SparkJobError(
            f"{silver_table} has rows but the checkpoint {checkpoint} is new, so the stream's dedup state would not "
            "know their keys: restore the checkpoint, or restart the event type from scratch (docs/runbook.md)"
        )
    for key, value in STATE_STORE_CONF.items():
        spark.conf.set(key, value)
    with operator_of_checkpoint(spark, state_operator(spark, checkpoint), name):
        stream = keyed_stream(kafka_io.read_stream(spark, settings, spec.topic, max_records), spec)
        writer = TopicBatchWriter(settings, spec, app_id, checkpoint, new_app_id)
        return start_query(stream, name, checkpoint, writer, available_now, trigger_seconds)


def main(argv: list[str]) -> None:
    """Parse the command line, refresh reference data and run one query per event type."""
    args = streaming_arguments("stream", __doc__ or "").parse_args(argv)
    settings = current_settings()
    specs = selected_specs(args.event_type)
    check_audit_table(settings.postgres_dsn())
    spark = get_spark("lakehouse-stream", own_driver=True)
    reference.refresh(spark, settings, [j.reference for spec in specs for j in spec.enrich])
    queries = [
        start(spark, settings, spec, args.available_now, args.trigger_seconds, args.max_records_per_batch)
        for spec in specs
    ]
    try:
        await_queries(spark, queries, args.available_now)
    except StreamingQueryException as exc:
        raise _explained(exc) from exc


# what Spark reports when a checkpoint's offset log or state store cannot be read
_DAMAGED_CHECKPOINT = ("the streaming checkpoint has no", "STATE_STORE", "STATE_DIRECTORY", "CANNOT_LOAD_STATE")


def _explained(exc: StreamingQueryException) -> Exception:
    """A damaged checkpoint as one line naming the recovery; any other failure as it is."""
    text = str(exc)
    if not any(marker in text for marker in _DAMAGED_CHECKPOINT):
        return exc
    # the innermost "[ERROR_CLASS] message" of the error's first line, without the query's ids
    first = next((line.strip() for line in text.splitlines() if line.strip()), text)
    conditions = re.findall(r"\[[A-Z][A-Z_.]+\][^\[]*", first)
    first = conditions[-1].strip() if conditions else first
    return SparkJobError(
        f"the checkpoint of a stream cannot be read ({first[:300]}): it is damaged; "
        "see 'A damaged checkpoint' in docs/runbook.md"
    )


if __name__ == "__main__":
    run_job(main)
