"""What every streaming job shares: command line, query start-up, waiting, and the per-batch audit."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StructField, StructType

from lakehouse.config import log_masking
from lakehouse.config.errors import LakehouseError, ServiceUnavailableError
from lakehouse.config.settings import LakeTable, Settings
from lakehouse.config.specs import EventTypeSpec, load_event_types
from lakehouse.ml.scoring import ModelVersion, champion
from lakehouse.postgres.stream_audit import record_batch
from lakehouse.spark.errors import SparkJobError, object_store_refusal
from lakehouse.spark.io.checkpoint import is_committed
from lakehouse.spark.io.delta import checkpoint_app_id_and_is_new, ensure_table

log = logging.getLogger(__name__)

# the streams' state (dedup keys, windows): RocksDB, checkpointed as a changelog per batch (a full snapshot only
# now and then); a new checkpoint records these, an existing one keeps what it was created with
STATE_STORE_CONF = {
    "spark.sql.streaming.stateStore.providerClass": (
        "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
    ),
    "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
    # no count of the rows in the store: each put and remove is then a blind write, not a read and a write (those
    # reads were a quarter of RocksDB's time in the stream, 5% of its task time; docs/timings.md); the query's
    # progress then reports 0 rows in state
    "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows": "false",
}


@dataclass
class BatchAudit:
    """One row of the audit table: what one micro-batch of one query did."""

    query: str
    layer: str
    source: str
    app_id: str
    batch_id: int
    status: str = "ok"
    offset_ranges: str = "{}"
    input_rows: int = 0
    output_rows: int = 0
    dead_letter_rows: int = 0
    quarantined_rows: int = 0
    deduplicated_rows: int = 0
    min_event_time: datetime | None = None
    max_event_time: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    processing_ms: int = 0
    source_lag_ms: int | None = None
    watermark: datetime | None = None
    late_rows: int = 0
    model_version: str | None = None
    scored_rows: int | None = None
    scoring_ms: float | None = None
    phases: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``phase`` (milliseconds), also when it raises."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[phase] = self.phases.get(phase, 0) + round((time.monotonic() - started) * 1000)

    def finish(self, settings: Settings) -> None:
        """Stamp the end time and upsert the row into ``lakehouse_meta.stream_batches`` (idempotent per query, app
        id and batch: a replayed batch replaces its row)."""
        self.finished_at = datetime.now(UTC).replace(tzinfo=None)
        if self.started_at:
            self.processing_ms = int((self.finished_at - self.started_at).total_seconds() * 1000)
        if self.max_event_time:
            self.source_lag_ms = int((self.finished_at - self.max_event_time).total_seconds() * 1000)
        row = asdict(self)
        row["phase_ms"] = json.dumps(row.pop("phases"), sort_keys=True) if self.phases else None
        record_batch(settings.postgres_dsn(), row)


def now_utc() -> datetime:
    """Naive UTC now (Spark session time zone is UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def streaming_arguments(prog: str, description: str, *, per_event_type: bool = True) -> argparse.ArgumentParser:
    """The command line every streaming job takes; ``per_event_type`` adds the options of a job that runs one
    Kafka query per event type (``--event-type``, ``--max-records-per-batch``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    if per_event_type:
        parser.add_argument(
            "--event-type",
            action="append",
            default=[],
            help="event type to process (repeatable; default: every type in config/event_types)",
        )
    parser.add_argument(
        "--available-now",
        action="store_true",
        help="process everything available, then exit (batch-style); default: run continuously",
    )
    parser.add_argument(
        "--trigger-seconds", type=float, default=2.0, help="micro-batch interval when running continuously (default 2)"
    )
    if not per_event_type:
        return parser
    parser.add_argument(
        "--max-records-per-batch",
        type=int,
        default=200_000,
        help="upper bound of Kafka records per Bronze micro-batch and event type (default 200000); Silver takes "
        "the Bronze commits made since its last batch",
    )
    return parser


def selected_specs(names: Sequence[str]) -> list[EventTypeSpec]:
    """The event types named on the command line, or all of them."""
    specs = load_event_types()
    unknown = sorted(set(names) - set(specs))
    if unknown:
        raise SparkJobError(f"unknown event type(s) {unknown}; known: {sorted(specs)}")
    return [specs[n] for n in (names or sorted(specs))]


def scoring_model(settings: Settings, spec: EventTypeSpec) -> ModelVersion | None:
    """The sentiment model version that scores ``spec``'s Silver rows now: the champion, looked up for each batch so
    that a promotion takes effect without a restart. None when the event type is not scored, there is no champion
    yet, or the registry cannot be reached (the rows are then written unscored, and ``lakehouse-job rescore``
    scores them later): scoring never holds up ingestion."""
    if spec.sentiment is None:
        return None
    try:
        return champion(settings.mlflow)
    except Exception as exc:  # noqa: BLE001 (any failure of the registry leaves the rows unscored, never lost)
        log.warning(
            "%s: the model registry at %s did not answer (%s); rows go unscored",
            spec.name,
            settings.mlflow.tracking_uri,
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        return None


@dataclass(frozen=True)
class SharedTable:
    """A Delta table that a query writes and that must exist before any query starts."""

    table: LakeTable
    schema: str
    partition_by: tuple[str, ...] = ()
    properties: tuple[tuple[str, str], ...] = ()


# Silver's per-file statistics: only the event time, which the revenue stream's audit reads from the Delta log
# (spark/io/checkpoint.py); Silver's readers prune by partition. With Delta's default (the first 32 columns), each
# file's statistics were about 1.5 KB of JSON, and a checkpoint of the table five times bigger (docs/timings.md).
# A Delta checkpoint every 100 commits rather than 10: the stream appends each batch and reads Silver back only when
# its late-event index reads a new date (spark/jobs/late_keys.py), and each checkpoint writes every file of the
# table, seconds of a batch once Silver holds thousands of files; a new reader replays at most 99 small commits.
SILVER_PROPERTIES = (("delta.dataSkippingStatsColumns", "event_timestamp"), ("delta.checkpointInterval", "100"))


def ensure_silver_table(spark: SparkSession, table: LakeTable, rows: DataFrame, partition_by: Sequence[str]) -> None:
    """Create an event type's Silver table with the columns of ``rows`` (nullable, as a table created by a write's
    schema) and ``SILVER_PROPERTIES``, unless it exists. An existing table keeps its properties: set them with
    ``ALTER TABLE ... SET TBLPROPERTIES`` (docs/runbook.md)."""
    columns = StructType([StructField(f.name, f.dataType, True, f.metadata) for f in rows.schema.fields])
    ensure_table(spark, table, columns.toDDL(), partition_by, dict(SILVER_PROPERTIES))


class PreparedQuery(NamedTuple):
    """A query's checkpoint and the transaction id stored in it, and whether this start created that id."""

    checkpoint: str
    app_id: str
    new_app_id: bool


def prepare_query(spark: SparkSession, settings: Settings, name: str, tables: Sequence[SharedTable]) -> PreparedQuery:
    """Create the query's output tables unless they exist (several queries creating one table at once would
    conflict), and return the query's checkpoint and the transaction id stored in it."""
    for table in tables:
        ensure_table(spark, table.table, table.schema, table.partition_by, dict(table.properties))
    checkpoint = settings.storage.checkpoint_path(name)
    return PreparedQuery(checkpoint, *checkpoint_app_id_and_is_new(spark, checkpoint))


def start_query(
    stream: DataFrame,
    name: str,
    checkpoint: str,
    handler: Callable[[DataFrame, int], None],
    available_now: bool,
    trigger_seconds: float,
    output_mode: str | None = None,
) -> StreamingQuery:
    """Start one foreachBatch query with its checkpoint and trigger (and ``output_mode``, for an aggregation)."""
    if not _is_connect(stream):
        # a Spark Connect server runs the handler in a process of its own, out of reach of this one's signals
        handler = stop_request.between_batches(name, handler)
    writer = stream.writeStream.queryName(name).option("checkpointLocation", checkpoint).foreachBatch(handler)
    if output_mode is not None:
        writer = writer.outputMode(output_mode)
    writer = (
        writer.trigger(availableNow=True)
        if available_now
        else writer.trigger(processingTime=f"{trigger_seconds} seconds")
    )
    return stop_request.started(writer.start(), checkpoint)


def _is_connect(frame: DataFrame) -> bool:
    from pyspark.sql.connect.dataframe import DataFrame as ConnectDataFrame

    return isinstance(frame, ConnectDataFrame)


class StopRequest:
    """SIGTERM or SIGINT stops the driver's queries between micro-batches: no batch is cut short, and nothing is
    written twice.

    A query waiting for its next trigger is stopped there, and its next start goes on after its last batch. A
    query inside a batch is stopped at the end of its foreachBatch handler, which returns only once the query is
    stopped (a query that is behind starts its next trigger at once, and a stop that lands while it plans a batch
    logs an ERROR). Spark may then leave that batch out of its commit log, and the next start replays it: every
    write of it is already committed, and the replay skips them all."""

    def __init__(self, patience_s: float = 120.0) -> None:
        self.requested = threading.Event()
        self.signal_name = ""
        self.patience_s = patience_s
        self._queries: dict[str, tuple[StreamingQuery, str]] = {}
        self._held: dict[str, threading.Event] = {}
        self._last_batch: dict[str, int] = {}

    def install(self) -> None:
        """Handle SIGTERM and SIGINT from now on (only the main thread may; elsewhere this does nothing)."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signal_name = self.signal_name or signal.Signals(signum).name
        self.requested.set()

    def between_batches(self, name: str, handler: Callable[[DataFrame, int], None]) -> Callable[[DataFrame, int], None]:
        """``handler``, holding its query at the end of a batch while a requested stop takes effect."""
        held = self._held.setdefault(name, threading.Event())

        def guarded(batch: DataFrame, batch_id: int) -> None:
            handler(batch, batch_id)
            self._last_batch[name] = batch_id
            if name not in self._queries or not self.requested.is_set():
                return
            query = self._queries[name][0]
            held.set()
            deadline = time.monotonic() + self.patience_s
            while query.isActive and time.monotonic() < deadline:
                time.sleep(0.05)

        return guarded

    def started(self, query: StreamingQuery, checkpoint: str) -> StreamingQuery:
        """Register a started query (over Spark Connect, the stop waits for it to be between triggers)."""
        self._queries[query.name or ""] = (query, checkpoint)
        return query

    def stop(self, spark: SparkSession, queries: Sequence[StreamingQuery]) -> None:
        """Stop each query between two batches, and say where its next start resumes."""
        log.info("%s: stopping the streaming queries once their running micro-batches are written", self.signal_name)
        deadline = time.monotonic() + self.patience_s
        for query in queries:
            name = query.name or ""
            held = self._held.get(name, threading.Event())
            # twice in a row: a query that is behind starts its next trigger at once, and shows "waiting" only briefly
            while query.isActive and time.monotonic() < deadline:
                if held.is_set() or (_waiting(query) and _waiting(query, 0.1)):
                    break
                time.sleep(0.05)
            query.stop()
            last = self._last_batch.get(name)
            if last is None:
                log.info("%s stopped before its first batch", name)
            elif name in self._queries and not is_committed(spark, self._queries[name][1], last):
                message = "%s stopped after writing batch %d, which Spark left out of its commit log: the next start "
                log.info(message + "replays it, writing nothing twice", name, last)
            else:
                log.info("%s stopped after batch %d; the next start goes on after it", name, last)


def _waiting(query: StreamingQuery, after_s: float = 0.0) -> bool:
    """Whether the query sits between two triggers (after sleeping ``after_s``)."""
    time.sleep(after_s)
    status = query.status
    return not status["isTriggerActive"] and status["message"] in _BETWEEN_TRIGGERS


_BETWEEN_TRIGGERS = ("Waiting for next trigger", "Waiting for data to arrive")


# one per driver process, as its signal handlers are
stop_request = StopRequest()


def await_queries(spark: SparkSession, queries: list[StreamingQuery], available_now: bool) -> None:
    """Wait for the queries: all of them to finish (available-now) or any one to fail (continuous). SIGTERM or
    SIGINT stops them all between micro-batches (``StopRequest``)."""
    stop_request.install()
    pending = list(queries)
    while pending:
        if stop_request.requested.is_set():
            stop_request.stop(spark, pending)
            return
        if available_now:
            if pending[0].awaitTermination(1):
                pending.pop(0)
        elif spark.streams.awaitAnyTermination(1):
            return


def run_job(main: Callable[[list[str]], None], argv: list[str] | None = None) -> None:
    """Run a job's main with logging set up; a failure is logged with its cause and exits non-zero."""
    log_masking.install()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    stop_request.install()
    started = time.monotonic()
    try:
        main(sys.argv[1:] if argv is None else argv)
    except ServiceUnavailableError as exc:
        log.error("%s (a retry may succeed)", exc)
        sys.exit(1)
    except LakehouseError as exc:
        log.error("%s", exc)
        sys.exit(2)
    except Exception as exc:
        refusal = object_store_refusal(exc)
        if refusal is not None:
            log.error("%s", refusal)
            sys.exit(2)
        log.exception("job failed after %.1fs", time.monotonic() - started)
        sys.exit(1)
    log.info("job finished in %.1fs", time.monotonic() - started)
