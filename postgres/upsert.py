"""Row upserts into a serving table, for a writer that changes a few rows again and again (the streaming query of
``order_revenue_5min``), and the lock that keeps such a writer apart from the interval loads of the same table
(``lakehouse.postgres.loader``).

An interval load reads the mart's Gold rows, then swaps them into the table; the streaming writer MERGEs its rows
into Gold, then upserts them here. Interleaved, a load could read Gold before the stream's MERGE and swap its day
in after the stream's upsert, putting the older values back until the stream next changes those rows. So both
hold the table's *serving lock*, a PostgreSQL advisory lock keyed by the table's name: a load in shared mode
(loads do not wait for each other) from before it reads Gold until its swap commits; a streaming batch in
exclusive mode from before its MERGE until its upsert commits. Each takes it before any other lock, and a load
and a streaming batch never run on one table at once, so it adds no lock cycle (no deadlock) and no lost update.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from lakehouse.postgres.errors import ServingError
from lakehouse.postgres.loader import partition_owner, split_table
from lakehouse.postgres.migrate import where
from lakehouse.postgres.staging import APPLICATION_NAME, day_partition

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)
LOCK_PREFIX = "lakehouse.serving_rows:"
_STAGE = "_lakehouse_upsert"


@contextmanager
def serving_lock(
    dsn: str,
    table: str,
    *,
    exclusive: bool,
    lock_timeout: str = "60s",
    application_name: str = APPLICATION_NAME,
) -> Iterator[psycopg.Connection]:
    """Hold the serving lock of ``table`` (shared: an interval load; exclusive: a streaming writer's batch) on a
    connection of its own, yielded for the caller's statements; closing it releases the lock, also when the
    process dies. Waits at most ``lock_timeout``, then raises ServingError."""
    schema, name = split_table(table)
    function = "pg_advisory_lock" if exclusive else "pg_advisory_lock_shared"
    with psycopg.connect(dsn, autocommit=True, application_name=application_name) as conn:
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (lock_timeout,))
        try:
            conn.execute(
                sql.SQL("SELECT {}(hashtextextended(%s, 0))").format(sql.Identifier(function)),
                (f"{LOCK_PREFIX}{schema}.{name}",),
            )
        except psycopg.errors.LockNotAvailable as exc:
            holder = "a load of it" if exclusive else "its streaming writer"
            raise ServingError(
                f"waited {lock_timeout} for the serving lock of {schema}.{name} in {where(dsn)}; {holder} holds it "
                "(see pg_locks where locktype = 'advisory'); nothing was changed: retry"
            ) from exc
        yield conn


def upsert(
    conn: psycopg.Connection,
    table: str,
    key: Sequence[str],
    rows: pa.Table,
    *,
    date_column: str | None = None,
    never_lower: Sequence[str] = (),
    lock_timeout: str = "60s",
) -> int:
    """Insert ``rows`` (an Arrow table with the table's column types) into ``table``, updating the rows whose
    ``key`` (the table's primary key) exists: COPY into a temporary table, then one ``INSERT ... ON CONFLICT DO
    UPDATE``, in one transaction. Idempotent: the same rows again change nothing. Returns the rows inserted or
    changed.

    ``never_lower`` names columns that only grow as events are added to a row's group (counts, sums of
    non-negative values): a row is not updated when one of them would become smaller, since the row in the table
    was then computed from events the new row lacks. A table partitioned by day on ``date_column`` gets the
    missing day partitions first, each in a transaction of its own (created empty, then attached: the lock
    attaching takes lets readers go on)."""
    if rows.num_rows == 0:
        return 0
    schema, name = split_table(table)
    target = sql.Identifier(schema, name)
    columns = list(rows.column_names)
    try:
        if date_column is not None:
            owner = partition_owner(conn, schema, name, date_column, name)
            if owner is not None:
                _add_day_partitions(conn, schema, name, owner, _days(rows, date_column), lock_timeout)
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
            conn.execute(
                sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
                    sql.Identifier(_STAGE), target
                )
            )
            _copy(conn, columns, rows)
            changed = conn.execute(_upsert_statement(target, columns, key, never_lower)).rowcount
    except psycopg.errors.UndefinedTable as exc:
        raise ServingError(f"{schema}.{name} does not exist: run `lakehouse migrate` ({exc})") from exc
    log.info("%s: %d of %d rows inserted or changed", table, changed, rows.num_rows)
    return changed


def _days(rows: pa.Table, date_column: str) -> list[date]:
    import pyarrow.compute as pc

    return sorted(day for day in pc.unique(rows[date_column]).to_pylist() if day is not None)


def _copy(conn: psycopg.Connection, columns: list[str], rows: pa.Table) -> None:
    """COPY the rows into the temporary table in PostgreSQL's binary format (pgpq encodes the Arrow batches)."""
    from pgpq import ArrowToPostgresBinaryEncoder

    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
        sql.Identifier(_STAGE), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    encoder = ArrowToPostgresBinaryEncoder(rows.schema)
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(encoder.write_header())
        for batch in rows.to_batches():
            copy.write(encoder.write_batch(batch))
        copy.write(encoder.finish())


def _upsert_statement(
    target: sql.Identifier, columns: list[str], key: Sequence[str], never_lower: Sequence[str]
) -> sql.Composed:
    values = [c for c in columns if c not in key]
    column = sql.Identifier
    changed = sql.SQL("({}) IS DISTINCT FROM ({})").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(column(c)) for c in values),
        sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(column(c)) for c in values),
    )
    # a NULL on either side does not block the update
    lower = [sql.SQL("NOT coalesce(EXCLUDED.{c} < t.{c}, false)").format(c=column(c)) for c in never_lower]
    return sql.SQL(
        "INSERT INTO {target} AS t ({columns}) SELECT {columns} FROM {stage} "
        "ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE {condition}"
    ).format(
        target=target,
        columns=sql.SQL(", ").join(map(column, columns)),
        stage=column(_STAGE),
        key=sql.SQL(", ").join(map(column, key)),
        updates=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=column(c)) for c in values),
        condition=sql.SQL(" AND ").join([changed, *lower]),
    )


def _add_day_partitions(
    conn: psycopg.Connection, schema: str, name: str, owner: str, days: list[date], lock_timeout: str
) -> None:
    """Create the missing day partitions ``<table>_p<yyyymmdd>`` of ``days`` as the table's owner: an empty table
    like the parent, then ATTACH (SHARE UPDATE EXCLUSIVE on the parent, which readers pass; ``CREATE TABLE ...
    PARTITION OF`` would take ACCESS EXCLUSIVE)."""
    existing = {
        relname
        for (relname,) in conn.execute(
            "SELECT c.relname FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            (f"{schema}.{name}",),
        )
    }
    for day in days:
        partition = day_partition(name, day)
        if partition in existing:
            continue
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
                conn.execute(
                    sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
                        sql.Identifier(schema, partition), sql.Identifier(schema, name)
                    )
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(schema, name),
                        sql.Identifier(schema, partition),
                        sql.Literal(day),
                        sql.Literal(day + timedelta(days=1)),
                    )
                )
        except psycopg.errors.DuplicateTable:
            continue  # created meanwhile by someone else
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ServingError(
                f"{schema}.{name}: the writing role must be a member of {owner}, the table's owner, to add the day "
                f"partition {partition}: GRANT {owner} TO <writing role>"
            ) from exc
        log.info("added day partition %s.%s", schema, partition)
