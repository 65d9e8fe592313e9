"""The per-batch audit of the streaming queries, in ``lakehouse_meta.stream_batches``
(migrations V009-V011, V013, V019).

Each micro-batch upserts one row keyed by (query, app id, batch id) after its data commits, so a replayed batch
replaces its own row and the audit costs no Delta commit."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from lakehouse.postgres.errors import ServingError
from lakehouse.postgres.migrate import where

TABLE = ("lakehouse_meta", "stream_batches")
COLUMNS = (
    "query", "app_id", "batch_id", "layer", "source", "status", "offset_ranges", "input_rows", "output_rows",
    "dead_letter_rows", "quarantined_rows", "deduplicated_rows", "min_event_time", "max_event_time", "started_at",
    "finished_at", "processing_ms", "source_lag_ms", "watermark", "late_rows", "model_version", "scored_rows",
    "scoring_ms", "phase_ms",
)  # fmt: skip
_KEY = ("query", "app_id", "batch_id")


def check_audit_table(dsn: str) -> None:
    """Raise ServingError, one line naming the fix, unless the audit table can be reached and exists. The streams
    call it before they start, rather than fail after their first micro-batch."""
    with _audit_connection(dsn) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (".".join(TABLE),)).fetchone()
    if found is None or found[0] is None:
        raise ServingError(_missing(dsn))


def record_batch(dsn: str, batch: Mapping[str, Any]) -> None:
    """Insert or replace the audit row of one batch (``batch`` has every column of ``COLUMNS``; ``offset_ranges``
    and ``phase_ms`` are JSON text; the naive times are UTC, as in the Spark session)."""
    statement = sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({key}) DO UPDATE SET {updates}"
    ).format(
        table=sql.Identifier(*TABLE),
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        values=sql.SQL(", ").join(sql.Placeholder(c) for c in COLUMNS),
        key=sql.SQL(", ").join(map(sql.Identifier, _KEY)),
        updates=sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in COLUMNS if c not in _KEY
        ),
    )
    try:
        with _audit_connection(dsn) as conn:
            conn.execute(statement, dict(batch))
    except psycopg.errors.UndefinedTable as exc:
        raise ServingError(_missing(dsn)) from exc


@contextmanager
def _audit_connection(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    try:
        with psycopg.connect(dsn, connect_timeout=10, application_name="lakehouse-stream-audit") as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            yield conn
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())  # psycopg's message has a line per address it tried
        raise ServingError(
            f"the streams record each batch in PostgreSQL and cannot reach {where(dsn)} ({reason}): "
            "start it (`lakehouse stack up postgres`) or set LAKEHOUSE_PG_DSN"
        ) from exc


def _missing(dsn: str) -> str:
    return f"{'.'.join(TABLE)} does not exist in {where(dsn)}: run `lakehouse migrate` before starting the streams"
