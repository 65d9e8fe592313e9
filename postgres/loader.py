"""Atomic, idempotent loads of one date interval of a table into PostgreSQL: the PostgreSQL side.

1. ``prepare`` checks the rows' columns against the target's and creates a staging table like the target
   (``lakehouse.postgres.staging``);
2. the caller COPYs the rows into it: ``lakehouse.spark.io.postgres`` does it from the Spark executors, in
   PostgreSQL's binary format, each column cast to the type ``StagedLoad.spark_types`` names;
3. ``finish`` checks the staged rows, then one transaction replaces the interval ``start <= date_column < end``
   of the target and records ``serving.freshness``; then the staging table is dropped (``abandon`` drops it
   when the COPY failed).

How step 3 replaces the interval depends on the target:

* **partitioned by day** on the date column (the interval marts' serving tables, V006): the staging table is
  partitioned the same way, one partition per day of the interval plus a DEFAULT partition that catches rows
  outside it. After the COPY the staging table gets the target's primary key and indexes, built in bulk, and a
  CHECK of each day's bounds; the swap then drops the target's partitions of those days and attaches the staged
  ones (``<table>_p<yyyymmdd>``): catalog changes only, no row moves while the target is locked.
* **a plain table** (dimensions, ``load_mode: full``, or any unpartitioned table): an UNLOGGED staging table;
  the swap deletes the interval (every row, for a full refresh) and inserts the staged rows.

The same transaction replaces the interval of each of the mart's rollups (``rollups:`` in its contract), with
the staged rows summed per the rollup's grain, so a chart that reads a rollup agrees with the mart's table.

Readers see the old interval or the new one, never a mix, and a rerun gives the same rows. A load killed
mid-COPY leaves only its staging table, which a later load drops once it is an hour old.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg
from psycopg import sql

from lakehouse.config.marts import Rollup
from lakehouse.postgres import staging
from lakehouse.postgres.errors import ServingError
from lakehouse.postgres.migrate import where
from lakehouse.postgres.staging import APPLICATION_NAME, ORPHAN_AGE, StagedLoad

log = logging.getLogger(__name__)

SERVING_SCHEMA = "serving"
FRESHNESS_TABLE = ("serving", "freshness")
SLA_TABLE = ("serving", "mart_sla")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
# 63 - len("_p<yyyymmdd>"): longer names of day-partitioned tables would be truncated in their partitions' names
_PARTITIONED_TABLE_CHARS = 53


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


def split_table(table: str) -> tuple[str, str]:
    """``"serving.fct"`` -> ``("serving", "fct")``; an unqualified name is in the serving schema."""
    schema, _, name = table.rpartition(".")
    schema = schema or SERVING_SCHEMA
    for part in (schema, name):
        if not _IDENTIFIER.match(part):
            raise ServingError(f"table {table!r}: {part!r} is not a lower-case SQL identifier ([a-z_][a-z0-9_]*)")
    return schema, name


def prepare(
    dsn: str,
    table: str,
    date_column: str | None,
    start: date,
    end: date,
    frame_columns: Sequence[str],
    *,
    mart: str | None = None,
) -> StagedLoad:
    """Start a load of ``[start, end)`` of ``table`` from rows with ``frame_columns`` (any order): check them
    against the table's columns, drop the table's orphan staging tables and create this load's, ready for the COPY.

    ``date_column=None`` is a full refresh (the rows will replace the whole table). ``mart`` names the load in
    messages and in ``serving.freshness`` (default: the table's name). Raises ServingError, before anything is
    created, for an empty interval, a missing table, a column type the loader cannot write or other columns.
    """
    if end <= start:
        raise ServingError(f"table {table}: interval end {end} must be after its start {start}")
    schema, name = split_table(table)
    mart_name = mart or name
    with psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
        spark_types = _spark_types(conn, schema, name, mart_name)
        if not spark_types:
            raise ServingError(
                f"mart {mart_name}: table {schema}.{name} does not exist in {where(dsn)}: run `lakehouse migrate`"
            )
        _check_columns(list(frame_columns), list(spark_types), date_column, mart_name, f"{schema}.{name}")
        owner = partition_owner(conn, schema, name, date_column, mart_name)
        staging.drop_orphans(conn, schema, name, ORPHAN_AGE)
        staged = StagedLoad(
            dsn=dsn,
            schema=schema,
            name=name,
            stage=staging.new_name(conn, name),
            columns=tuple(spark_types),
            spark_types=spark_types,
            date_column=date_column,
            start=start,
            end=end,
            mart=mart_name,
            owner=owner,
        )
        staging.create(conn, staged)
    log.info("loading %s %s..%s into %s via %s on %s", mart_name, start, end, staged.target, staged.staging, where(dsn))
    return staged


def finish(
    staged: StagedLoad,
    copied_rows: int,
    *,
    silver_watermark: datetime | None = None,
    lock_timeout: str = "60s",
    rollups: Sequence[Rollup] = (),
) -> str:
    """Make the ``copied_rows`` rows COPYed into the staging table the interval's rows in one transaction, with
    the interval of each of ``rollups``, and record them in ``serving.freshness``; then drop the staging table,
    whether the load succeeded or not.

    The swap waits at most ``lock_timeout`` for locks. Raises ServingError (DataQualityError for duplicate keys
    or rows outside the interval) and leaves the target untouched on any failure. Returns what the swap replaced.
    """
    try:
        with psycopg.connect(staged.dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
            staging.check_rows(conn, staged, copied_rows)
            if staged.owner is None:
                return _swap(conn, staged, copied_rows, silver_watermark, lock_timeout, rollups)
            staging.build_indexes(conn, staged)
            return _swap_partitions(conn, staged, copied_rows, silver_watermark, lock_timeout, rollups)
    finally:
        staging.drop(staged)


def abandon(staged: StagedLoad) -> None:
    """Drop the staging table of a load that will not finish (its COPY failed); the target was not touched."""
    staging.drop(staged)


def record_sla(dsn: str, mart: str, sla_minutes: int) -> None:
    """Write a mart's freshness SLA (its contract's ``freshness_sla_minutes``) into ``serving.mart_sla``, which
    ``serving.v_mart_freshness`` compares the age of its latest load with."""
    with psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (mart, sla_minutes) VALUES (%s, %s) "
                "ON CONFLICT (mart) DO UPDATE SET sla_minutes = EXCLUDED.sla_minutes "
                "WHERE {}.sla_minutes IS DISTINCT FROM EXCLUDED.sla_minutes"
            ).format(sql.Identifier(*SLA_TABLE), sql.Identifier(SLA_TABLE[1])),
            (mart, sla_minutes),
        )


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
        return staging.drop_orphans(conn, schema, name, older_than)


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


def partition_owner(conn: psycopg.Connection, schema: str, name: str, date_column: str | None, mart: str) -> str | None:
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


def _swap(
    conn: psycopg.Connection,
    staged: StagedLoad,
    rows: int,
    silver_watermark: datetime | None,
    lock_timeout: str,
    rollups: Sequence[Rollup],
) -> str:
    """Replace the interval in one transaction by deleting and inserting rows; says how many it replaced."""
    target = sql.Identifier(staged.schema, staged.name)
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
            # serialises loads of this table (two swaps of one interval would otherwise collide on its keys)
            # while readers (ACCESS SHARE) go on reading the old rows until COMMIT
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(target))
            summed = _sum_staged_rows(conn, staged, rollups)
            deleted = _delete_interval(conn, staged, target)
            conn.execute(
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                    target, staged.column_list, staged.column_list, sql.Identifier(staged.schema, staged.stage)
                )
            )
            _replace_rollups(conn, staged, summed)
            _record_freshness(conn, staged, rows, silver_watermark)
    except psycopg.errors.UniqueViolation as exc:
        raise staging.duplicate_keys(staged, exc) from exc
    except psycopg.errors.LockNotAvailable as exc:
        raise _lock_timeout(staged, lock_timeout) from exc
    return f"replaced {deleted:,} rows"


def _delete_interval(conn: psycopg.Connection, staged: StagedLoad, table: sql.Identifier) -> int:
    """Delete the load's interval from ``table`` (every row, for a full refresh); how many rows went."""
    if staged.date_column is None:
        # DELETE, not TRUNCATE, so readers keep seeing the old rows until COMMIT
        return conn.execute(sql.SQL("DELETE FROM {}").format(table)).rowcount
    return conn.execute(
        sql.SQL("DELETE FROM {} WHERE {c} >= %s AND {c} < %s").format(table, c=sql.Identifier(staged.date_column)),
        (staged.start, staged.end),
    ).rowcount


def rollup_query(rollup: Rollup, source: sql.Composable) -> sql.Composed:
    """The rows of ``rollup`` computed from ``source`` (rows with the mart's columns): its sums per its grain."""
    grain = sql.SQL(", ").join(map(sql.Identifier, rollup.grain))
    sums = sql.SQL(", ").join(sql.SQL("sum({0}) AS {0}").format(sql.Identifier(c)) for c in rollup.sums)
    query = sql.SQL("SELECT {grain}, {sums} FROM {source} GROUP BY {grain}")
    return query.format(grain=grain, sums=sums, source=source)


def _sum_staged_rows(
    conn: psycopg.Connection, staged: StagedLoad, rollups: Sequence[Rollup]
) -> list[tuple[Rollup, sql.Identifier]]:
    """Each rollup's rows from the staged rows, in a temporary table dropped at COMMIT."""
    summed = []
    for index, rollup in enumerate(rollups):
        temporary = sql.Identifier(f"lakehouse_rollup_{index}")
        conn.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS {}").format(
                temporary, rollup_query(rollup, sql.Identifier(staged.schema, staged.stage))
            )
        )
        summed.append((rollup, temporary))
    return summed


def _replace_rollups(conn: psycopg.Connection, staged: StagedLoad, summed: list[tuple[Rollup, sql.Identifier]]) -> None:
    for rollup, temporary in summed:
        table = sql.Identifier(staged.schema, rollup.table)
        _delete_interval(conn, staged, table)
        columns = sql.SQL(", ").join(map(sql.Identifier, [*rollup.grain, *rollup.sums]))
        conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(table, columns, columns, temporary))


def _record_freshness(
    conn: psycopg.Connection, staged: StagedLoad, rows: int, silver_watermark: datetime | None
) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (mart, interval_start, interval_end, rows, silver_watermark, loaded_at) "
            "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (mart, interval_start, interval_end) DO UPDATE "
            "SET rows = EXCLUDED.rows, silver_watermark = EXCLUDED.silver_watermark, loaded_at = EXCLUDED.loaded_at"
        ).format(sql.Identifier(*FRESHNESS_TABLE)),
        (staged.mart, staged.start, staged.end, rows, silver_watermark),
    )


def _lock_timeout(staged: StagedLoad, lock_timeout: str) -> ServingError:
    return ServingError(
        f"mart {staged.mart}: could not lock {staged.target} within {lock_timeout} (another load or a long "
        f"transaction holds it); {staged.target} was not changed: retry the load"
    )


def _swap_partitions(
    conn: psycopg.Connection,
    staged: StagedLoad,
    rows: int,
    silver_watermark: datetime | None,
    lock_timeout: str,
    rollups: Sequence[Rollup],
) -> str:
    """Replace the interval's day partitions of the target by the staged ones in one transaction.

    Attaching takes a lock that readers pass (SHARE UPDATE EXCLUSIVE, which also serialises loads of the
    table); only when a day already has a partition does dropping it take the lock that makes readers wait for
    the (catalog-only) commit.
    """
    target = sql.Identifier(staged.schema, staged.name)
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
            staging.set_owner_role(conn, staged)
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(target))
            summed = _sum_staged_rows(conn, staged, rollups)  # before the lock that makes readers wait
            existing = {
                name
                for (name,) in conn.execute(
                    "SELECT c.relname FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = %s::regclass",
                    (staged.target,),
                )
            }
            replaced = [day for day in staged.days if staged.day_partition(day) in existing]
            if replaced:
                conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(target))
            for day in staged.days:
                partition = sql.Identifier(staged.schema, staged.day_partition(day))
                staged_day = sql.Identifier(staged.schema, staged.stage_partition(day))
                if day in replaced:
                    conn.execute(sql.SQL("DROP TABLE {}").format(partition))
                conn.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                        sql.Identifier(staged.schema, staged.stage), staged_day
                    )
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} RENAME TO {}").format(staged_day, sql.Identifier(staged.day_partition(day)))
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                        target, partition, sql.Literal(day), sql.Literal(day + timedelta(days=1))
                    )
                )
            _replace_rollups(conn, staged, summed)
            _record_freshness(conn, staged, rows, silver_watermark)
    except psycopg.errors.LockNotAvailable as exc:
        raise _lock_timeout(staged, lock_timeout) from exc
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        raise ServingError(f"mart {staged.mart}: {exc}; {staged.target} was not changed") from exc
    except psycopg.errors.InvalidObjectDefinition as exc:
        raise ServingError(
            f"mart {staged.mart}: {exc} (a partition of {staged.target} that is not one day, <table>_p<yyyymmdd>, "
            f"overlaps the interval); {staged.target} was not changed"
        ) from exc
    return f"{len(staged.days)} day partitions attached, {len(replaced)} of them replacing one"
