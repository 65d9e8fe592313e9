"""PostgreSQL sink: atomic, idempotent loads of a DataFrame, or of a date interval of a mart's Gold Delta table,
into a serving table.

``lakehouse.postgres.loader`` creates the staging table and swaps its rows in; between the two, the executors
COPY the frame's rows into it in PostgreSQL's binary format, encoded from the Arrow batches by pgpq after each
column is cast to the serving column's type. Each partition writes over a connection of its own, so nothing but
one row count per partition reaches the driver.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import time
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

import psycopg
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config.settings import Settings
from lakehouse.postgres import loader
from lakehouse.postgres.errors import ServingError, ServingUnavailableError
from lakehouse.postgres.loader import SERVING_SCHEMA, LoadResult
from lakehouse.postgres.staging import APPLICATION_NAME, StagedLoad
from lakehouse.postgres.upsert import serving_lock
from lakehouse.spark.io.sinks import SinkRun, gold_rows
from lakehouse.spark.session import get_spark

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.config.marts import MartSpec, Rollup

log = logging.getLogger(__name__)


def load_frame(
    df: DataFrame,
    dsn: str,
    table: str,
    date_column: str | None,
    start: date,
    end: date,
    *,
    mart: str | None = None,
    silver_watermark: datetime | None = None,
    lock_timeout: str = "60s",
    max_writers: int | None = None,
    rollups: Sequence[Rollup] = (),
) -> LoadResult:
    """Replace the rows of ``table`` with ``start <= date_column < end`` by the rows of ``df``, atomically.

    ``df`` must have exactly the target's columns (any order) and only rows inside the interval. The COPY
    runs on the executors, each opening its own connection (``max_writers`` caps them by coalescing). The load
    holds the table's serving lock in shared mode throughout (``lakehouse.postgres.upsert``), and it and the
    swap wait at most ``lock_timeout`` for locks. Raises ServingError (DataQualityError for duplicate keys
    or rows outside the interval) and leaves the target untouched on any failure.

    ``date_column=None`` is a full refresh: ``df`` replaces every row of ``table`` in one transaction (readers
    see the old table or the new one); ``[start, end)`` then only names the run in ``serving.freshness``.
    The same transaction replaces the interval of each of ``rollups`` (``lakehouse.postgres.loader``).
    """
    began = time.perf_counter()
    # shared with other loads, exclusive of a streaming writer's batch (lakehouse.postgres.upsert): from before
    # ``df`` is read (the COPY computes it) until the swap commits
    with serving_lock(dsn, table, exclusive=False, lock_timeout=lock_timeout):
        staged = loader.prepare(dsn, table, date_column, start, end, df.columns, mart=mart)
        try:
            copied = _copy(df, staged, max_writers)
        except BaseException:
            loader.abandon(staged)
            raise
        replaced = loader.finish(
            staged, copied, silver_watermark=silver_watermark, lock_timeout=lock_timeout, rollups=rollups
        )
    result = LoadResult(staged.mart, staged.target, start, end, copied, time.perf_counter() - began)
    log.info("%s (%s)", result.summary(), replaced)
    return result


def write_mart(run: SinkRun) -> LoadResult:
    """The ``postgres`` sink: replace ``[run.start, run.end)`` of ``serving.<serving_table>`` by the run's Gold rows
    (the whole table for a full-refresh mart), recording ``serving.freshness`` and the contract's freshness SLA
    (``serving.mart_sla``).

    An interval without Gold rows is still replaced (stale serving rows are deleted) and gives ``rows=0``."""
    spec = run.spec
    date_column = None if spec.is_full_refresh else spec.date_column
    result = load_frame(
        run.rows,
        run.dsn,
        f"{SERVING_SCHEMA}.{spec.serving_table}",
        date_column,
        run.start,
        run.end,
        mart=spec.name,
        silver_watermark=run.silver_watermark,
        rollups=spec.rollups,
    )
    if spec.freshness_sla_minutes is not None:
        loader.record_sla(run.dsn, spec.name, spec.freshness_sla_minutes)
    if result.rows == 0 and date_column is None:
        log.warning("no rows for %s: table cleared", spec.name)
    elif result.rows == 0:
        log.warning("no rows for %s %s..%s: interval cleared", spec.name, run.start, run.end)
    return result


def load_mart(
    settings: Settings,
    spec: MartSpec,
    start: date,
    end: date,
    *,
    dsn: str | None = None,
    spark: SparkSession | None = None,
    silver_watermark: datetime | None = None,
) -> LoadResult:
    """Load ``[start, end)`` of a mart's Gold Delta table into ``serving.<serving_table>`` (the ``postgres`` sink
    alone; the Gold job's load writes to every sink of the contract)."""
    session = spark or get_spark(f"load-{spec.name}", settings=settings)
    rows = gold_rows(session, settings, spec, start, end)
    return write_mart(SinkRun(settings, spec, start, end, rows, dsn or settings.postgres_dsn(), silver_watermark))


def _copy(df: DataFrame, staged: StagedLoad, max_writers: int | None) -> int:
    """COPY the frame into the staging table from the executors; returns the number of rows written."""
    frame = df.select(*[F.col(c).cast(staged.spark_types[c]).alias(c) for c in staged.columns])
    if max_writers is not None:
        frame = frame.coalesce(max_writers)
    writer = functools.partial(_copy_partition, staged.dsn, staged.copy_statement.encode())
    try:
        counts = frame.mapInArrow(writer, "rows long").collect()
    except PySparkException as exc:
        cause = _worker_error(exc)
        error = ServingUnavailableError if _lost_connection(cause) else ServingError
        raise error(
            f"mart {staged.mart}: computing the frame or copying it to the staging table of {staged.target} "
            f"failed: {cause}; {staged.target} was not changed"
        ) from exc
    return sum(int(row["rows"]) for row in counts)


def _lost_connection(worker_error: str) -> bool:
    """True when the worker's PostgreSQL error is an ``OperationalError``: the server went away, refused the
    connection or cancelled the statement, not the rows."""
    match = re.match(r"psycopg\.(?:errors\.)?(\w+):", worker_error)
    error_class = getattr(psycopg.errors, match.group(1), None) if match else None
    return isinstance(error_class, type) and issubclass(error_class, psycopg.OperationalError)


def _worker_error(exc: Exception) -> str:
    """The PostgreSQL error raised in a Python worker, out of Spark's wrapping traceback."""
    text = str(exc)
    match = re.search(r"^psycopg\.\S+: .*(?:\nDETAIL: .*)?", text, re.MULTILINE)
    if match:
        return match.group(0).replace("\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else type(exc).__name__


def _copy_partition(dsn: str, statement: bytes, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Runs on an executor: one connection and one binary COPY per partition, committed only when all of it is
    sent."""
    import pyarrow as pa
    from pgpq import ArrowToPostgresBinaryEncoder

    non_empty = (batch for batch in batches if batch.num_rows)
    first = next(non_empty, None)
    rows = 0
    if first is not None:
        encoder = ArrowToPostgresBinaryEncoder(first.schema)
        with (
            psycopg.connect(dsn, application_name=APPLICATION_NAME) as conn,
            conn.cursor() as cursor,
            cursor.copy(statement) as copy,
        ):
            copy.write(encoder.write_header())
            for batch in itertools.chain([first], non_empty):
                copy.write(encoder.write_batch(batch))
                rows += batch.num_rows
            copy.write(encoder.finish())
    yield pa.RecordBatch.from_arrays([pa.array([rows], pa.int64())], names=["rows"])
