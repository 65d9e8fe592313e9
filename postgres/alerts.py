"""Alert rows in ``serving.load_alerts``: failed tasks and DQ gate failures, for operators and BI monitors."""

from __future__ import annotations

import logging

import psycopg

log = logging.getLogger(__name__)


def record_alert(dsn: str, dag_id: str, task_id: str, run_id: str, mart: str | None, reason: str) -> None:
    """Insert one alert row; never raises (an alert must not hide the failure that caused it)."""
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            conn.execute(
                "INSERT INTO serving.load_alerts (dag_id, task_id, run_id, mart, reason) VALUES (%s, %s, %s, %s, %s)",
                (dag_id, task_id, run_id, mart, reason[:4000]),
            )
    except psycopg.Error as exc:
        log.warning("could not record alert for %s.%s: %s", dag_id, task_id, exc)
