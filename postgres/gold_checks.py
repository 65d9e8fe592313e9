"""DQ gate results and Silver watermarks of Gold builds, kept in ``lakehouse_meta.gold_checks``.

The build writes one row per mart and interval (the dates it rebuilt, row counts, problems, the Silver
watermark it saw); the Airflow ``dq_gate`` task reads it without starting Spark; the load marks it loaded.
Only loaded builds advance a mart's watermark, so late Silver rows are rebuilt until they reach serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import psycopg


@dataclass(frozen=True)
class GoldCheck:
    """One build's gate result."""

    mart: str
    interval_start: date
    interval_end: date
    built_dates: list[date]
    gold_rows: int
    silver_rows: int
    silver_watermark: datetime | None
    problems: list[str]

    @property
    def passed(self) -> bool:
        """True when the gate found nothing wrong."""
        return not self.problems


def record(dsn: str, check: GoldCheck) -> None:
    """Insert or replace the gate result of (mart, interval); a rebuild resets ``loaded_at``."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            """
            INSERT INTO lakehouse_meta.gold_checks AS g (mart, interval_start, interval_end, built_dates, gold_rows,
                silver_rows, silver_watermark, problems, checked_at, loaded_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), NULL)
            ON CONFLICT (mart, interval_start, interval_end) DO UPDATE SET built_dates = excluded.built_dates,
                gold_rows = excluded.gold_rows, silver_rows = excluded.silver_rows,
                silver_watermark = excluded.silver_watermark, problems = excluded.problems,
                checked_at = excluded.checked_at, loaded_at = NULL
            """,
            (
                check.mart,
                check.interval_start,
                check.interval_end,
                check.built_dates,
                check.gold_rows,
                check.silver_rows,
                check.silver_watermark,
                check.problems,
            ),
        )


def latest(dsn: str, mart: str, start: date, end: date) -> GoldCheck | None:
    """The recorded gate result of (mart, interval), if the build ran."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT mart, interval_start, interval_end, built_dates, gold_rows, silver_rows, silver_watermark, "
            "problems FROM lakehouse_meta.gold_checks WHERE mart = %s AND interval_start = %s AND interval_end = %s",
            (mart, start, end),
        ).fetchone()
    return GoldCheck(*row) if row else None


def mark_loaded(dsn: str, mart: str, start: date, end: date) -> None:
    """Record that the build of (mart, interval) reached serving."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE lakehouse_meta.gold_checks SET loaded_at = now() "
            "WHERE mart = %s AND interval_start = %s AND interval_end = %s",
            (mart, start, end),
        )


def loaded_watermark(dsn: str, mart: str) -> datetime | None:
    """Max Silver ingest time covered by a loaded build of the mart (None before the first load)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT max(silver_watermark) FROM lakehouse_meta.gold_checks WHERE mart = %s AND loaded_at IS NOT NULL",
            (mart,),
        ).fetchone()
    return row[0] if row else None
