"""Atomic, idempotent loads of one mart's date interval from its Gold Delta table into PostgreSQL.

1. a staging table ``<schema>._stage_<table>_<epoch>_<hex>`` is created like the target;
2. the Spark executors COPY the frame's rows into it in PostgreSQL's binary format (encoded from the Arrow
   batches by pgpq, after casting each column to the target column's type), so nothing but one row count per
   partition reaches the driver;
3. one transaction replaces the interval ``start <= date_column < end`` of the target and records
   ``serving.freshness``; then the staging table is dropped.

How step 3 replaces the interval depends on the target:

* **partitioned by day** on the date column (the interval marts' serving tables, V006): the staging table is
  partitioned the same way, one partition per day of the interval plus a DEFAULT partition that catches rows
  outside it. After the COPY the staging table gets the target's primary key and indexes, built in bulk, and a
  CHECK of each day's bounds; the swap then drops the target's partitions of those days and attaches the staged
  ones (``<table>_p<yyyymmdd>``): catalog changes only, no row moves while the target is locked.
* **a plain table** (dimensions, ``load_mode: full``, or any unpartitioned table): an UNLOGGED staging table;
  the swap deletes the interval (every row, for a full refresh) and inserts the staged rows.

Readers see the old interval or the new one, never a mix, and a rerun gives the same rows. A load killed
mid-COPY leaves only its staging table; the epoch in its name lets a later load drop it after an hour without
touching the staging table of a load still running.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from lakehouse.config.settings import Settings
from lakehouse.postgres.errors import DataQualityError, ServingError
from lakehouse.postgres.migrate import where

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

SERVING_SCHEMA = "serving"
FRESHNESS_TABLE = ("serving", "freshness")
ORPHAN_AGE = timedelta(hours=1)
APPLICATION_NAME = "lakehouse-loader"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
# 63 (PostgreSQL's identifier limit) - len("_stage_") - len("_<10-digit epoch>_<8 hex>")
_STAGE_TABLE_CHARS = 36
_STAGE_NAME = re.compile(r"^_stage_(?P<table>[a-z0-9_]+)_(?P<epoch>\d{10})_[0-9a-f]{8}$")
# 63 - len("_p<yyyymmdd>"): longer names of day-partitioned tables would be truncated in their partitions' names
_PARTITIONED_TABLE_CHARS = 53
INDEX_BUILD_MEMORY = "256MB"


@dataclass(frozen=True)
class LoadResult:
    """What one load did: the interval ``[interval_start, interval_end)`` of ``table`` now holds ``rows``."""

    mart: str
    table: str
    interval_start: date
    interval_end: date
    rows: int
    seconds: float

    def summary(self) -> str:
        """One line for logs and the CLI."""
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.mart}: {self.rows:,} rows into {self.table} for {self.interval_start}..{self.interval_end} "
            f"in {self.seconds:.1f} s ({rate:,.0f} rows/s)"
        )


@dataclass(frozen=True)
class _Plan:
    """One load in flight: target, staging table, columns in table order, interval and mart.

    ``date_column`` None means a full refresh: the staged rows replace the whole table. ``owner`` is set when
    the target is partitioned by day on ``date_column``: the role the partition swap runs as.
    """

    schema: str
    name: str
    stage: str
    columns: list[str]
    spark_types: dict[str, str]
    date_column: str | None
    start: date
    end: date
    mart: str
    owner: str | None = None

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days)]

    def day_partition(self, day: date) -> str:
        """Name of the target's partition of ``day``."""
        return f"{self.name}_p{day:%Y%m%d}"

    def stage_partition(self, day: date | None) -> str:
        """Name of the staging table's partition of ``day`` (None: its DEFAULT partition)."""
        suffix = self.stage.removeprefix(f"_stage_{self.name[:_STAGE_TABLE_CHARS]}")
        return f"_stage_{'default' if day is None else f'p{day:%Y%m%d}'}{suffix}"

    @property
    def target(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def staging(self) -> str:
        return f"{self.schema}.{self.stage}"

    @property
    def column_list(self) -> sql.Composed:
        return sql.SQL(", ").join(map(sql.Identifier, self.columns))


def split_table(table: str) -> tuple[str, str]:
    """``"serving.fct"`` -> ``("serving", "fct")``; an unqualified name is in the serving schema."""
    schema, _, name = table.rpartition(".")
    schema = schema or SERVING_SCHEMA
    for part in (schema, name):
        if not _IDENTIFIER.match(part):
            raise ServingError(f"table {table!r}: {part!r} is not a lower-case SQL identifier ([a-z_][a-z0-9_]*)")
    return schema, name


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
) -> LoadResult:
    """Replace the rows of ``table`` with ``start <= date_column < end`` by the rows of ``df``, atomically.

    ``df`` must have exactly the target's columns (any order) and only rows inside the interval. The COPY
    runs on the executors, each opening its own connection (``max_writers`` caps them by coalescing). The
    swap waits at most ``lock_timeout`` for locks. Raises ServingError (DataQualityError for duplicate keys
    or rows outside the interval) and leaves the target untouched on any failure.

    ``date_column=None`` is a full refresh: ``df`` replaces every row of ``table`` in one transaction (readers
    see the old table or the new one); ``[start, end)`` then only names the run in ``serving.freshness``.
    """
    if end <= start:
        raise ServingError(f"table {table}: interval end {end} must be after its start {start}")
    began = time.perf_counter()
    schema, name = split_table(table)
    mart_name = mart or name
    with psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
        spark_types = _spark_types(conn, schema, name, mart_name)
        if not spark_types:
            raise ServingError(
                f"mart {mart_name}: table {schema}.{name} does not exist in {where(dsn)}: run `lakehouse migrate`"
            )
        columns = list(spark_types)
        _check_columns(list(df.columns), columns, date_column, mart_name, f"{schema}.{name}")
        owner = _partition_owner(conn, schema, name, date_column, mart_name)
        _drop_orphans(conn, schema, name, ORPHAN_AGE)
        plan = _Plan(
            schema,
            name,
            _new_stage_name(conn, name),
            columns,
            spark_types,
            date_column,
            start,
            end,
            mart_name,
            owner,
        )
        if plan.owner is None:
            _create_stage(conn, plan)
        else:
            _create_partitioned_stage(conn, plan)
    log.info("loading %s %s..%s into %s via %s on %s", mart_name, start, end, plan.target, plan.staging, where(dsn))
    try:
        copied = _copy(df, dsn, plan, max_writers)
        with psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
            _check_stage(conn, plan, copied)
            if plan.owner is None:
                replaced = _swap(conn, plan, copied, silver_watermark, lock_timeout)
            else:
                _index_stage(conn, plan)
                replaced = _swap_partitions(conn, plan, copied, silver_watermark, lock_timeout)
    finally:
        _drop_stage(dsn, schema, plan.stage)
    result = LoadResult(mart_name, plan.target, start, end, copied, time.perf_counter() - began)
    log.info("%s (%s)", result.summary(), replaced)
    return result


def load_mart(
    settings: Settings,
    mart_name: str,
    start: date,
    end: date,
    *,
    dsn: str | None = None,
    spark: SparkSession | None = None,
    silver_watermark: datetime | None = None,
) -> LoadResult:
    """Load ``[start, end)`` of a mart's Gold Delta table into ``serving.<serving_table>``.

    An interval without Gold rows is still replaced (stale serving rows are deleted) and gives ``rows=0``.
    A ``load_mode: full`` mart (a dimension) replaces the whole serving table with the whole Gold table.
    """
    from pyspark.sql import functions as F

    from lakehouse.config.specs import mart as mart_spec
    from lakehouse.spark.io.delta import table_exists
    from lakehouse.spark.session import get_spark

    spec = mart_spec(mart_name)
    path = settings.storage.table_path("gold", spec.name)
    session = spark or get_spark(f"load-{spec.name}", settings=settings)
    if not table_exists(session, path):
        raise ServingError(
            f"mart {spec.name}: no Gold Delta table at {path}: build it first "
            f"(`lakehouse gold {spec.name} --start {start} --end {end}`)"
        )
    frame = session.read.format("delta").load(path)
    date_column = None if spec.load_mode == "full" else spec.date_column
    if date_column is not None:
        column = F.col(date_column)
        frame = frame.where((column >= F.lit(start)) & (column < F.lit(end)))
    result = load_frame(
        frame,
        dsn or settings.postgres_dsn(),
        f"{SERVING_SCHEMA}.{spec.serving_table}",
        date_column,
        start,
        end,
        mart=spec.name,
        silver_watermark=silver_watermark,
    )
    if result.rows == 0 and date_column is None:
        log.warning("no rows for %s: table cleared", spec.name)
    elif result.rows == 0:
        log.warning("no rows for %s %s..%s: interval cleared", spec.name, start, end)
    return result


def drop_orphan_stages(
    dsn: str, *, table: str | None = None, older_than: timedelta = ORPHAN_AGE, schema: str = SERVING_SCHEMA
) -> list[str]:
    """Drop staging tables left by killed loads: those older than ``older_than`` (of ``table`` only, if given).

    ``older_than=timedelta(0)`` drops every staging table, including those of loads still running: use it
    only when no load runs. Tables this role may not drop, or that are locked, are skipped.
    """
    name: str | None = None
    if table is not None:
        schema, name = split_table(table if "." in table else f"{schema}.{table}")
    with psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
        return _drop_orphans(conn, schema, name, older_than)


# PostgreSQL column types the binary COPY writes, and the Spark type whose Arrow encoding pgpq turns into each
_SPARK_TYPES = {
    "text": "string",
    "character varying": "string",
    "bigint": "bigint",
    "integer": "int",
    "smallint": "smallint",
    "double precision": "double",
    "real": "float",
    "boolean": "boolean",
    "date": "date",
    "timestamp with time zone": "timestamp",
    "timestamp without time zone": "timestamp_ntz",
}


def _spark_types(conn: psycopg.Connection, schema: str, name: str, mart: str) -> dict[str, str]:
    """The table's columns in table order, each with the Spark type the frame's column is cast to."""
    rows = conn.execute(
        "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, name),
    ).fetchall()
    types: dict[str, str] = {}
    for column, data_type, precision, scale in rows:
        if data_type == "numeric" and precision is not None:
            types[column] = f"decimal({precision},{scale})"
        elif data_type in _SPARK_TYPES:
            types[column] = _SPARK_TYPES[data_type]
        else:
            raise ServingError(
                f"mart {mart}: column {column} of {schema}.{name} has type {data_type}, which the loader does not "
                f"write; use one of {sorted(_SPARK_TYPES)} or numeric(p,s)"
            )
    return types


def _check_columns(frame: list[str], target: list[str], date_column: str | None, mart: str, table: str) -> None:
    missing = [c for c in target if c not in frame]
    extra = [c for c in frame if c not in target]
    if missing or extra:
        raise ServingError(
            f"mart {mart}: the frame's columns do not match table {table}: missing {missing}, unexpected {extra}; "
            f"make the Gold table produce exactly {target} (or migrate the table)"
        )
    if date_column is not None and date_column not in target:
        raise ServingError(f"mart {mart}: date column {date_column!r} is not a column of table {table} {target}")


def _partition_owner(
    conn: psycopg.Connection, schema: str, name: str, date_column: str | None, mart: str
) -> str | None:
    """The owner of the target if it is partitioned by range on ``date_column`` alone, else None."""
    row = conn.execute(
        "SELECT a.attname, p.partstrat, p.partnatts, pg_catalog.pg_get_userbyid(c.relowner) "
        "FROM pg_catalog.pg_partitioned_table p JOIN pg_catalog.pg_class c ON c.oid = p.partrelid "
        "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
        "WHERE p.partrelid = %s::regclass",
        (f"{schema}.{name}",),
    ).fetchone()
    if row is None:
        return None
    column, strategy, columns, owner = row
    if date_column is None or (column, strategy, columns) != (date_column, "r", 1):
        raise ServingError(
            f"mart {mart}: table {schema}.{name} is partitioned, but not by range on the date column "
            f"{date_column!r} alone; the loader swaps day partitions of that column only"
        )
    if len(name) > _PARTITIONED_TABLE_CHARS:
        raise ServingError(
            f"mart {mart}: table name {name!r} is longer than {_PARTITIONED_TABLE_CHARS} characters, too long for "
            "its day partitions' names (<table>_p<yyyymmdd>); rename the table"
        )
    return str(owner)


def _new_stage_name(conn: psycopg.Connection, name: str) -> str:
    row = conn.execute("SELECT extract(epoch FROM now())::bigint").fetchone()
    assert row is not None
    # the server's clock, not this host's: orphan ages are then comparable across loader hosts
    return f"_stage_{name[:_STAGE_TABLE_CHARS]}_{int(row[0]):010d}_{secrets.token_hex(4)}"


def _create_stage(conn: psycopg.Connection, plan: _Plan) -> None:
    conn.execute(
        sql.SQL("CREATE UNLOGGED TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
            sql.Identifier(plan.schema, plan.stage), sql.Identifier(plan.schema, plan.name)
        )
    )


def _set_owner_role(conn: psycopg.Connection, plan: _Plan) -> None:
    """Act as the target's owner for the rest of the transaction: only the owner may attach and detach."""
    try:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(str(plan.owner))))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServingError(
            f"mart {plan.mart}: the loading role must be a member of {plan.owner}, the owner of {plan.target}, "
            f"to swap its day partitions: GRANT {plan.owner} TO <loading role>"
        ) from exc


def _create_partitioned_stage(conn: psycopg.Connection, plan: _Plan) -> None:
    """The staging table: one partition per day of the interval and a DEFAULT partition for any other row.

    Created as the target's owner, so the partitions it becomes part of belong to the owner like the rest.
    Without indexes: they are built in bulk after the COPY (``_index_stage``). Each day partition gets a CHECK
    of its bounds while it is empty (free), so attaching it to the target later needs no scan.
    """
    stage = sql.Identifier(plan.schema, plan.stage)
    with conn.transaction():
        _set_owner_role(conn, plan)
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS) PARTITION BY RANGE ({})").format(
                stage, sql.Identifier(plan.schema, plan.name), sql.Identifier(str(plan.date_column))
            )
        )
        for day in plan.days:
            partition = sql.Identifier(plan.schema, plan.stage_partition(day))
            bounds = (sql.Literal(day), sql.Literal(day + timedelta(days=1)))
            conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    partition, stage, *bounds
                )
            )
            # the CHECK that lets the swap attach the partition without a scan, checked row by row by the COPY
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT day_bounds CHECK ({c} >= {} AND {c} < {})").format(
                    partition, *bounds, c=sql.Identifier(str(plan.date_column))
                )
            )
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(
                sql.Identifier(plan.schema, plan.stage_partition(None)), stage
            )
        )


def _copy(df: DataFrame, dsn: str, plan: _Plan, max_writers: int | None) -> int:
    """COPY the frame into the staging table from the executors; returns the number of rows written."""
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    frame = df.select(*[F.col(c).cast(plan.spark_types[c]).alias(c) for c in plan.columns])
    if max_writers is not None:
        frame = frame.coalesce(max_writers)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
        sql.Identifier(plan.schema, plan.stage), plan.column_list
    )
    writer = functools.partial(_copy_partition, dsn, statement.as_string().encode())
    try:
        counts = frame.mapInArrow(writer, "rows long").collect()
    except PySparkException as exc:
        raise ServingError(
            f"mart {plan.mart}: computing the frame or copying it to the staging table of {plan.target} failed: "
            f"{_worker_error(exc)}; "
            f"{plan.target} was not changed"
        ) from exc
    return sum(int(row["rows"]) for row in counts)


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


def _check_stage(conn: psycopg.Connection, plan: _Plan, copied: int) -> None:
    stage = sql.Identifier(plan.schema, plan.stage)
    if plan.date_column is None:
        row = conn.execute(sql.SQL("SELECT count(*), 0 FROM {}").format(stage)).fetchone()
    else:
        query = sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE {c} IS NULL OR {c} < %s OR {c} >= %s) FROM {stage}"
        ).format(c=sql.Identifier(plan.date_column), stage=stage)
        row = conn.execute(query, (plan.start, plan.end)).fetchone()
    assert row is not None
    staged, outside = int(row[0]), int(row[1])
    if staged != copied:
        raise ServingError(
            f"mart {plan.mart}: {staged} rows were staged for {plan.target} but Spark reported {copied} (a task "
            "attempt committed and was retried); nothing was loaded: rerun the load"
        )
    if outside:
        raise DataQualityError(
            f"mart {plan.mart}: {outside} of {staged} rows have {plan.date_column} outside "
            f"{plan.start}..{plan.end} (or NULL); filter the frame to the interval; {plan.target} was not changed"
        )


def _swap(
    conn: psycopg.Connection, plan: _Plan, rows: int, silver_watermark: datetime | None, lock_timeout: str
) -> str:
    """Replace the interval in one transaction by deleting and inserting rows; says how many it replaced."""
    target = sql.Identifier(plan.schema, plan.name)
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
            # serialises loads of this table (two swaps of one interval would otherwise collide on its keys)
            # while readers (ACCESS SHARE) go on reading the old rows until COMMIT
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(target))
            if plan.date_column is None:
                # full refresh: DELETE, not TRUNCATE, so readers keep seeing the old rows until COMMIT
                deleted = conn.execute(sql.SQL("DELETE FROM {}").format(target)).rowcount
            else:
                deleted = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {c} >= %s AND {c} < %s").format(
                        target, c=sql.Identifier(plan.date_column)
                    ),
                    (plan.start, plan.end),
                ).rowcount
            conn.execute(
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                    target, plan.column_list, plan.column_list, sql.Identifier(plan.schema, plan.stage)
                )
            )
            _record_freshness(conn, plan, rows, silver_watermark)
    except psycopg.errors.UniqueViolation as exc:
        raise _duplicate_keys(plan, exc) from exc
    except psycopg.errors.LockNotAvailable as exc:
        raise _lock_timeout(plan, lock_timeout) from exc
    return f"replaced {deleted:,} rows"


def _record_freshness(conn: psycopg.Connection, plan: _Plan, rows: int, silver_watermark: datetime | None) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (mart, interval_start, interval_end, rows, silver_watermark, loaded_at) "
            "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (mart, interval_start, interval_end) DO UPDATE "
            "SET rows = EXCLUDED.rows, silver_watermark = EXCLUDED.silver_watermark, loaded_at = EXCLUDED.loaded_at"
        ).format(sql.Identifier(*FRESHNESS_TABLE)),
        (plan.mart, plan.start, plan.end, rows, silver_watermark),
    )


def _duplicate_keys(plan: _Plan, exc: psycopg.errors.UniqueViolation) -> DataQualityError:
    return DataQualityError(
        f"mart {plan.mart}: rows for {plan.start}..{plan.end} repeat a primary key of {plan.target} "
        f"({exc.diag.message_detail}); fix the mart's grain; {plan.target} was not changed"
    )


def _lock_timeout(plan: _Plan, lock_timeout: str) -> ServingError:
    return ServingError(
        f"mart {plan.mart}: could not lock {plan.target} within {lock_timeout} (another load or a long "
        f"transaction holds it); {plan.target} was not changed: retry the load"
    )


_INDEX_DEFINITION = re.compile(r"^CREATE (?P<unique>UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ (?P<rest>USING .*)$", re.DOTALL)


def _index_stage(conn: psycopg.Connection, plan: _Plan) -> None:
    """Give the staging table the target's unique constraints and indexes: one bulk build each, rather than
    row-by-row maintenance during the COPY, so attaching its partitions builds nothing while the target is
    locked. Repeated keys fail here, before the target is touched."""
    target = f"{plan.schema}.{plan.name}"
    constraints = conn.execute(
        "SELECT pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY contype, conname",
        (target,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) "
        "ORDER BY i.indexrelid",
        (target,),
    ).fetchall()
    stage = sql.Identifier(plan.schema, plan.stage)
    try:
        with conn.transaction():
            _set_owner_role(conn, plan)
            conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (INDEX_BUILD_MEMORY,))
            for (definition,) in constraints:
                conn.execute(sql.SQL("ALTER TABLE {} ADD {}").format(stage, sql.SQL(definition)))
            for (definition,) in indexes:
                match = _INDEX_DEFINITION.match(definition)
                if match is None:
                    raise ServingError(f"mart {plan.mart}: cannot rebuild index {definition!r} of {plan.target}")
                conn.execute(
                    sql.SQL("CREATE {}INDEX ON {} {}").format(
                        sql.SQL(match["unique"] or ""), stage, sql.SQL(match["rest"])
                    )
                )
    except psycopg.errors.UniqueViolation as exc:
        raise _duplicate_keys(plan, exc) from exc


def _swap_partitions(
    conn: psycopg.Connection, plan: _Plan, rows: int, silver_watermark: datetime | None, lock_timeout: str
) -> str:
    """Replace the interval's day partitions of the target by the staged ones in one transaction.

    Attaching takes a lock that readers pass (SHARE UPDATE EXCLUSIVE, which also serialises loads of the
    table); only when a day already has a partition does dropping it take the lock that makes readers wait for
    the (catalog-only) commit.
    """
    target = sql.Identifier(plan.schema, plan.name)
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
            _set_owner_role(conn, plan)
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(target))
            existing = {
                name
                for (name,) in conn.execute(
                    "SELECT c.relname FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = %s::regclass",
                    (f"{plan.schema}.{plan.name}",),
                )
            }
            replaced = [day for day in plan.days if plan.day_partition(day) in existing]
            if replaced:
                conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(target))
            for day in plan.days:
                partition = sql.Identifier(plan.schema, plan.day_partition(day))
                staged = sql.Identifier(plan.schema, plan.stage_partition(day))
                if day in replaced:
                    conn.execute(sql.SQL("DROP TABLE {}").format(partition))
                conn.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                        sql.Identifier(plan.schema, plan.stage), staged
                    )
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} RENAME TO {}").format(staged, sql.Identifier(plan.day_partition(day)))
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                        target, partition, sql.Literal(day), sql.Literal(day + timedelta(days=1))
                    )
                )
            _record_freshness(conn, plan, rows, silver_watermark)
    except psycopg.errors.LockNotAvailable as exc:
        raise _lock_timeout(plan, lock_timeout) from exc
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        raise ServingError(f"mart {plan.mart}: {exc}; {plan.target} was not changed") from exc
    except psycopg.errors.InvalidObjectDefinition as exc:
        raise ServingError(
            f"mart {plan.mart}: {exc} (a partition of {plan.target} that is not one day, <table>_p<yyyymmdd>, "
            f"overlaps the interval); {plan.target} was not changed"
        ) from exc
    return f"{len(plan.days)} day partitions attached, {len(replaced)} of them replacing one"


def _drop_stage(dsn: str, schema: str, stage: str) -> None:
    statement = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, stage))
    try:
        with psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME) as conn, conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', '30s', true)")
            conn.execute(statement)
    except psycopg.Error as exc:
        # the load's own outcome stands; drop_orphan_stages() removes the table once it is an hour old
        log.warning("could not drop staging table %s.%s (%s); it will be dropped as an orphan", schema, stage, exc)


def _drop_orphans(conn: psycopg.Connection, schema: str, table: str | None, older_than: timedelta) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname, extract(epoch FROM now())::bigint FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND left(c.relname, 7) = '_stage_' "
        "AND pg_catalog.pg_has_role(c.relowner, 'USAGE') ORDER BY c.relname",
        (schema,),
    ).fetchall()
    dropped: list[str] = []
    for relname, now in rows:
        match = _STAGE_NAME.match(relname)
        if match is None or (table is not None and match["table"] != table[:_STAGE_TABLE_CHARS]):
            continue
        if now - int(match["epoch"]) < older_than.total_seconds():
            continue
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', '5s', true)")
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, relname)))
        except psycopg.errors.LockNotAvailable:
            log.warning("staging table %s.%s is in use; not dropped", schema, relname)
            continue
        log.info("dropped orphan staging table %s.%s", schema, relname)
        dropped.append(f"{schema}.{relname}")
    return dropped
