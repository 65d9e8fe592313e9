"""The model server's latency windows, kept in ``serving.ml_serving_latency`` (migration V014).

A window's rows are upserted on (server, window start, model name, model version): writing a window again replaces
its rows, so a write retried after a failure whose outcome was unknown counts nothing twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from datetime import datetime

import psycopg
from psycopg import sql

from lakehouse.postgres.errors import ServingError
from lakehouse.postgres.migrate import where

TABLE = ("serving", "ml_serving_latency")


@dataclass(frozen=True)
class LatencyRow:
    """One model version's requests in one window of one server (percentiles None when none was answered 200)."""

    server: str
    window_start: datetime
    window_end: datetime
    model_name: str
    model_version: str
    requests: int
    texts: int
    errors_4xx: int
    errors_5xx: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


COLUMNS = tuple(f.name for f in fields(LatencyRow))
_KEY = ("server", "window_start", "model_name", "model_version")


def _upsert(rows: int) -> sql.Composed:
    one_row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)))
    return sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES {rows} ON CONFLICT ({key}) DO UPDATE SET {updates}, recorded_at = now()"
    ).format(
        table=sql.Identifier(*TABLE),
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        rows=sql.SQL(", ").join([one_row] * rows),
        key=sql.SQL(", ").join(map(sql.Identifier, _KEY)),
        updates=sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in COLUMNS if c not in _KEY
        ),
    )


def record_windows(dsn: str, windows: Sequence[Sequence[LatencyRow]]) -> None:
    """Upsert the rows of each window (one INSERT a window), all in one transaction; ServingError saying what
    failed and what to do."""
    try:
        with psycopg.connect(dsn, connect_timeout=5, application_name="lakehouse-model-server") as conn:
            for rows in windows:
                if rows:
                    conn.execute(_upsert(len(rows)), [value for row in rows for value in astuple(row)])
    except psycopg.Error as exc:
        raise ServingError(
            f"writing {'.'.join(TABLE)} in {where(dsn)} failed ({type(exc).__name__}: {str(exc).strip()}): {_fix(exc)}"
        ) from exc


def _fix(exc: psycopg.Error) -> str:
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return "run `lakehouse migrate` (V014 creates the table)"
    if isinstance(exc, psycopg.OperationalError):
        return "start PostgreSQL (`lakehouse stack up postgres`) or point LAKEHOUSE_PG_DSN at it"
    return "see the PostgreSQL server's log"
