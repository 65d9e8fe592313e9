"""The staging table of one serving load (``lakehouse.postgres.loader``): its name, its creation like the target,
the check of the rows copied into it, the bulk build of the target's keys and indexes on it, and dropping it, or
the staging tables that killed loads left behind.

A staging table is ``<schema>._stage_<table>_<epoch>_<hex>``. The epoch, read from the server's clock, lets a later
load drop the table of a killed one after an hour without touching the staging table of a load still running.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta

import psycopg
from psycopg import sql

from lakehouse.postgres.errors import DataQualityError, ServingError

log = logging.getLogger(__name__)

APPLICATION_NAME = "lakehouse-loader"
ORPHAN_AGE = timedelta(hours=1)
INDEX_BUILD_MEMORY = "256MB"
# 63 (PostgreSQL's identifier limit) - len("_stage_") - len("_<10-digit epoch>_<8 hex>")
_STAGE_TABLE_CHARS = 36
_STAGE_NAME = re.compile(r"^_stage_(?P<table>[a-z0-9_]+)_(?P<epoch>\d{10})_[0-9a-f]{8}$")
_INDEX_DEFINITION = re.compile(r"^CREATE (?P<unique>UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ (?P<rest>USING .*)$", re.DOTALL)


@dataclass(frozen=True)
class StagedLoad:
    """One load in flight whose staging table exists: what the COPY into it and the swap out of it need.

    The rows go in with ``copy_statement`` (PostgreSQL's binary format, columns in ``columns`` order), each column
    cast first to ``spark_types[column]``, the Spark type whose Arrow encoding gives the target column's type.
    ``date_column`` None means a full refresh: the staged rows replace the whole table. ``owner`` is set when the
    target is partitioned by day on ``date_column``: the role the partition swap runs as.
    """

    dsn: str = field(repr=False)
    schema: str
    name: str
    stage: str
    columns: tuple[str, ...]
    spark_types: dict[str, str]
    date_column: str | None
    start: date
    end: date
    mart: str
    owner: str | None = None

    @property
    def target(self) -> str:
        """``<schema>.<table>`` of the target."""
        return f"{self.schema}.{self.name}"

    @property
    def staging(self) -> str:
        """``<schema>.<staging table>``."""
        return f"{self.schema}.{self.stage}"

    @property
    def copy_statement(self) -> str:
        """The COPY of the rows into the staging table, in PostgreSQL's binary format."""
        return (
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)")
            .format(sql.Identifier(self.schema, self.stage), self.column_list)
            .as_string()
        )

    @property
    def column_list(self) -> sql.Composed:
        """The columns, quoted, in table order."""
        return sql.SQL(", ").join(map(sql.Identifier, self.columns))

    @property
    def days(self) -> list[date]:
        """The days of the interval."""
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days)]

    def day_partition(self, day: date) -> str:
        """Name of the target's partition of ``day``."""
        return day_partition(self.name, day)

    def stage_partition(self, day: date | None) -> str:
        """Name of the staging table's partition of ``day`` (None: its DEFAULT partition)."""
        suffix = self.stage.removeprefix(f"_stage_{self.name[:_STAGE_TABLE_CHARS]}")
        return f"_stage_{'default' if day is None else f'p{day:%Y%m%d}'}{suffix}"


def day_partition(table: str, day: date) -> str:
    """Name of the partition of ``day`` of a serving table partitioned by day: ``<table>_p<yyyymmdd>``."""
    return f"{table}_p{day:%Y%m%d}"


def new_name(conn: psycopg.Connection, table: str) -> str:
    """A fresh staging table name for a load of ``table``."""
    row = conn.execute("SELECT extract(epoch FROM now())::bigint").fetchone()
    assert row is not None
    # the server's clock, not this host's: orphan ages are then comparable across loader hosts
    return f"_stage_{table[:_STAGE_TABLE_CHARS]}_{int(row[0]):010d}_{secrets.token_hex(4)}"


def create(conn: psycopg.Connection, staged: StagedLoad) -> None:
    """Create the staging table like the target: UNLOGGED for a plain target, partitioned by day like the target
    when it is (``staged.owner`` set)."""
    if staged.owner is None:
        conn.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
                sql.Identifier(staged.schema, staged.stage), sql.Identifier(staged.schema, staged.name)
            )
        )
    else:
        _create_partitioned(conn, staged)


def set_owner_role(conn: psycopg.Connection, staged: StagedLoad) -> None:
    """Act as the target's owner for the rest of the transaction: only the owner may attach and detach."""
    try:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(str(staged.owner))))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServingError(
            f"mart {staged.mart}: the loading role must be a member of {staged.owner}, the owner of {staged.target}, "
            f"to swap its day partitions: GRANT {staged.owner} TO <loading role>"
        ) from exc


def _create_partitioned(conn: psycopg.Connection, staged: StagedLoad) -> None:
    """The staging table: one partition per day of the interval and a DEFAULT partition for any other row.

    Created as the target's owner, so the partitions it becomes part of belong to the owner like the rest.
    Without indexes: they are built in bulk after the COPY (``build_indexes``). Each day partition gets a CHECK
    of its bounds while it is empty (free), so attaching it to the target later needs no scan.
    """
    stage = sql.Identifier(staged.schema, staged.stage)
    with conn.transaction():
        set_owner_role(conn, staged)
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS) PARTITION BY RANGE ({})").format(
                stage, sql.Identifier(staged.schema, staged.name), sql.Identifier(str(staged.date_column))
            )
        )
        for day in staged.days:
            partition = sql.Identifier(staged.schema, staged.stage_partition(day))
            bounds = (sql.Literal(day), sql.Literal(day + timedelta(days=1)))
            conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    partition, stage, *bounds
                )
            )
            # the CHECK that lets the swap attach the partition without a scan, checked row by row by the COPY
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT day_bounds CHECK ({c} >= {} AND {c} < {})").format(
                    partition, *bounds, c=sql.Identifier(str(staged.date_column))
                )
            )
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(
                sql.Identifier(staged.schema, staged.stage_partition(None)), stage
            )
        )


def check_rows(conn: psycopg.Connection, staged: StagedLoad, copied: int) -> None:
    """Refuse the staged rows unless they are the ``copied`` rows the COPY reported, all inside the interval."""
    stage = sql.Identifier(staged.schema, staged.stage)
    if staged.date_column is None:
        row = conn.execute(sql.SQL("SELECT count(*), 0 FROM {}").format(stage)).fetchone()
    else:
        query = sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE {c} IS NULL OR {c} < %s OR {c} >= %s) FROM {stage}"
        ).format(c=sql.Identifier(staged.date_column), stage=stage)
        row = conn.execute(query, (staged.start, staged.end)).fetchone()
    assert row is not None
    count, outside = int(row[0]), int(row[1])
    if count != copied:
        raise ServingError(
            f"mart {staged.mart}: {count} rows were staged for {staged.target} but Spark reported {copied} (a task "
            "attempt committed and was retried); nothing was loaded: rerun the load"
        )
    if outside:
        raise DataQualityError(
            f"mart {staged.mart}: {outside} of {count} rows have {staged.date_column} outside "
            f"{staged.start}..{staged.end} (or NULL); filter the frame to the interval; {staged.target} was not changed"
        )


def duplicate_keys(staged: StagedLoad, exc: psycopg.errors.UniqueViolation) -> DataQualityError:
    """The error of staged rows that repeat a key of the target."""
    return DataQualityError(
        f"mart {staged.mart}: rows for {staged.start}..{staged.end} repeat a primary key of {staged.target} "
        f"({exc.diag.message_detail}); fix the mart's grain; {staged.target} was not changed"
    )


def build_indexes(conn: psycopg.Connection, staged: StagedLoad) -> None:
    """Give the staging table the target's unique constraints and indexes: one bulk build each, rather than
    row-by-row maintenance during the COPY, so attaching its partitions builds nothing while the target is
    locked. Repeated keys fail here (DataQualityError), before the target is touched."""
    constraints = conn.execute(
        "SELECT pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY contype, conname",
        (staged.target,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) "
        "ORDER BY i.indexrelid",
        (staged.target,),
    ).fetchall()
    stage = sql.Identifier(staged.schema, staged.stage)
    try:
        with conn.transaction():
            set_owner_role(conn, staged)
            conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (INDEX_BUILD_MEMORY,))
            for (definition,) in constraints:
                conn.execute(sql.SQL("ALTER TABLE {} ADD {}").format(stage, sql.SQL(definition)))
            for (definition,) in indexes:
                match = _INDEX_DEFINITION.match(definition)
                if match is None:
                    raise ServingError(f"mart {staged.mart}: cannot rebuild index {definition!r} of {staged.target}")
                conn.execute(
                    sql.SQL("CREATE {}INDEX ON {} {}").format(
                        sql.SQL(match["unique"] or ""), stage, sql.SQL(match["rest"])
                    )
                )
    except psycopg.errors.UniqueViolation as exc:
        raise duplicate_keys(staged, exc) from exc


def drop(staged: StagedLoad) -> None:
    """Drop the staging table; a failure is only logged (the table is then dropped later as an orphan)."""
    statement = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(staged.schema, staged.stage))
    try:
        with (
            psycopg.connect(staged.dsn, autocommit=True, application_name=APPLICATION_NAME) as conn,
            conn.transaction(),
        ):
            conn.execute("SELECT set_config('lock_timeout', '30s', true)")
            conn.execute(statement)
    except psycopg.Error as exc:
        # the load's own outcome stands; drop_orphan_stages() removes the table once it is an hour old
        log.warning("could not drop staging table %s (%s); it will be dropped as an orphan", staged.staging, exc)


def drop_orphans(conn: psycopg.Connection, schema: str, table: str | None, older_than: timedelta) -> list[str]:
    """Drop the staging tables of ``schema`` (of ``table`` only, if given) older than ``older_than`` that this role
    may drop and that no one holds; returns them as ``<schema>.<name>``."""
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
