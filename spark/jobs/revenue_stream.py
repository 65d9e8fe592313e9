"""Streaming Gold: the ``order_revenue_5min`` mart in near real time, from Silver orders read as a Delta stream.

One query (``revenue_5min``) counts the placed orders in 5-minute tumbling event-time windows per tenant, region
and product category, as the mart's daily build does (the shared transform,
``lakehouse.spark.transforms.gold.order_revenue_5min_stream``), with a 10-minute watermark on
``event_timestamp`` and in update mode: each micro-batch gives the windows it changed, with their values over
every order the stream has read for them. The batch

* MERGEs them on the mart's grain into ``gold/order_revenue_5min``, the Delta table the daily build writes;
* upserts them into ``serving.order_revenue_5min`` (COPY into a temporary table, then INSERT ... ON CONFLICT),
  holding the table's serving lock, so that a daily load never swaps older rows over the upsert;
* records itself in ``lakehouse_meta.stream_batches``.

Both writes put absolute values, so a replayed batch changes nothing. Neither lowers a measure of a window: lower
values mean the stored row counts orders the stream has not read (the daily build read newer Silver rows). An
order later than the watermark is dropped here; its day's daily build counts it, and stays the correction.

spark-submit spark/jobs/revenue_stream.py [--available-now] [--trigger-seconds 5]
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from lakehouse.config.marts import MartSpec, mart
from lakehouse.config.settings import LakeTable, Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.config.specs import event_type
from lakehouse.postgres.loader import SERVING_SCHEMA
from lakehouse.postgres.stream_audit import check_audit_table
from lakehouse.postgres.upsert import serving_lock, upsert
from lakehouse.spark.io import reference
from lakehouse.spark.io.checkpoint import delta_batch_input
from lakehouse.spark.io.delta import load, merge_rows, table_exists
from lakehouse.spark.jobs.common import (
    STATE_STORE_CONF,
    BatchAudit,
    SharedTable,
    await_queries,
    now_utc,
    prepare_query,
    run_job,
    start_query,
    streaming_arguments,
)
from lakehouse.spark.marts import conform
from lakehouse.spark.session import get_spark
from lakehouse.spark.transforms.gold import order_revenue_5min_stream

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)
QUERY = "revenue_5min"
MART = "order_revenue_5min"
# what only grows as orders are added to a window: a stored window with a higher value was computed from more
MEASURES = ("orders_placed", "units_sold", "total_revenue", "unique_customers")
# how long a batch waits for a daily load of the serving table to finish (a load holds the serving lock)
SERVING_LOCK_TIMEOUT = "10min"
# how often a continuous run started before Silver has its first rows looks for the table
SILVER_POLL_SECONDS = 5.0


class RevenueBatchWriter:
    """foreachBatch handler: the windows a micro-batch changed into Gold and serving, then the batch's audit row."""

    def __init__(
        self, settings: Settings, spec: MartSpec, dsn: str, app_id: str, checkpoint: str, silver: LakeTable
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.dsn = dsn
        self.app_id = app_id
        self.checkpoint = checkpoint
        self.silver = silver
        self.source = f"silver/{spec.inputs.silver[0]}"
        self.gold = settings.storage.table("gold", spec.name)
        self.table = f"{SERVING_SCHEMA}.{spec.serving_table}"

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Process one micro-batch."""
        spark = batch.sparkSession
        audit = BatchAudit(QUERY, "gold", self.source, self.app_id, batch_id, started_at=now_utc())
        # the stateful aggregation runs once: the MERGE reads the cached rows, the upsert their Arrow copy
        rows = batch.persist()
        try:
            windows = rows.toArrow()
            changed = self._write(spark, rows, windows) if windows.num_rows else 0
        finally:
            rows.unpersist()
        read = delta_batch_input(spark, self.checkpoint, batch_id, self.silver, "event_timestamp")
        audit.offset_ranges = json.dumps({self.source: read.ranges()})
        audit.input_rows, audit.output_rows = read.rows, windows.num_rows
        audit.min_event_time, audit.max_event_time = read.min_time, read.max_time
        if read.watermark_ms:
            audit.watermark = datetime.fromtimestamp(read.watermark_ms / 1000, UTC).replace(tzinfo=None)
        audit.finish(self.settings)
        log.info(
            "%s batch %d: %d Silver rows (versions %s), %d windows merged into Gold, %d serving rows changed",
            QUERY,
            batch_id,
            read.rows,
            read.ranges() or "none",
            windows.num_rows,
            changed,
        )

    def _write(self, spark: SparkSession, rows: DataFrame, windows: pa.Table) -> int:
        """MERGE into Gold, then upsert into serving, under the serving lock; returns the serving rows changed."""
        date_column = str(self.spec.date_column)
        days = sorted({day for day in windows.column(date_column).to_pylist() if day is not None})
        with serving_lock(
            self.dsn,
            self.table,
            exclusive=True,
            lock_timeout=SERVING_LOCK_TIMEOUT,
            application_name="lakehouse-revenue-stream",
        ) as conn:
            merge_rows(rows, self.gold, self.spec.grain, date_column, days, MEASURES)
            return upsert(conn, self.table, self.spec.grain, windows, date_column=date_column, never_lower=MEASURES)


def gold_schema(spec: MartSpec) -> str:
    """The DDL schema of the mart's Gold table: the contract's columns."""
    return ", ".join(f"`{column.name}` {column.type}" for column in spec.columns)


def start(
    spark: SparkSession, settings: Settings, dsn: str, available_now: bool, trigger_seconds: float = 2.0
) -> StreamingQuery | None:
    """Start the query, writing to the serving database at ``dsn``. Without a Silver table to read yet, a continuous
    run waits for it and an ``available_now`` run returns None (nothing to do)."""
    spec = mart(MART)
    source = spec.inputs.silver[0]
    silver = settings.storage.table("silver", event_type(source).tables.silver)
    if not table_exists(spark, silver):
        message = f"no Silver {source} table {silver} yet (`lakehouse stream` creates it with its first rows)"
        if available_now:
            log.warning("%s: nothing to do", message)
            return None
        log.warning("%s: waiting for it", message)
        while not table_exists(spark, silver):
            time.sleep(max(trigger_seconds, SILVER_POLL_SECONDS))
    gold = SharedTable(settings.storage.table("gold", spec.name), gold_schema(spec), (str(spec.date_column),))
    checkpoint, app_id, _ = prepare_query(spark, settings, QUERY, [gold])
    reference.refresh(spark, settings, list(spec.inputs.references))
    # rebuild-silver rewrites Silver: those commits are skipped (their orders were read before; the daily build
    # recomputes their days)
    # the windows' state in the same store as the stream job's dedup state (fixed when the checkpoint is new)
    for key, value in STATE_STORE_CONF.items():
        spark.conf.set(key, value)
    orders = load(spark.readStream.option("skipChangeCommits", "true"), silver)
    windows = conform(order_revenue_5min_stream(orders, reference.current(spark, settings, "products")), spec)
    writer = RevenueBatchWriter(settings, spec, dsn, app_id, checkpoint, silver)
    return start_query(windows, QUERY, checkpoint, writer, available_now, trigger_seconds, output_mode="update")


def main(argv: list[str]) -> None:
    """Parse the command line and run the query."""
    parser = streaming_arguments("revenue_stream", __doc__ or "", per_event_type=False)
    parser.add_argument(
        "--dsn-env",
        default="LAKEHOUSE_PG_DSN",
        help="environment variable holding the serving DSN (default: LAKEHOUSE_PG_DSN, else the environment config); "
        "the batch audit goes to the environment's database",
    )
    args = parser.parse_args(argv)
    settings = current_settings()
    dsn = os.environ.get(args.dsn_env) or settings.postgres_dsn()
    check_audit_table(settings.postgres_dsn())
    spark = get_spark("lakehouse-revenue-stream", own_driver=True)
    query = start(spark, settings, dsn, args.available_now, args.trigger_seconds)
    if query is not None:
        await_queries(spark, [query], args.available_now)


if __name__ == "__main__":
    run_job(main)
