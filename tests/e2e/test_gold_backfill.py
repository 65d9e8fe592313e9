"""The gold_marts DAG over a range of days, two ways, on the real stack:

1. the daily runs: one run of the whole DAG (27 tasks) per day, through ``dag.test``;
2. ``airflow backfill create`` over the same days, executed by the real scheduler (api-server, scheduler,
   dag-processor, triggerer, LocalExecutor: every task its own process), with the Gold tasks as clients of the
   stack's Spark Connect server; afterwards Airflow's health endpoint reports every component healthy.

The backfill reprocesses days the daily runs already loaded, and must leave every serving table exactly as the
daily runs did: backfills equal daily runs, and reruns change nothing. Interval marts are also checked against
the hand-counted rows of ``tests/silver_samples.py``, dimensions against the reference data's row counts.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from lakehouse.config.marts import MartSpec, load_marts
from lakehouse.config.settings import Settings, settings
from tests.silver_samples import EXPECTED_FULL_ROWS, EXPECTED_ROWS, EXPECTED_TOTALS, write_silver

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
MARTS = load_marts()
BACKFILL_TIMEOUT_S = 900


@pytest.fixture
def days(unique: str) -> list[date]:
    """Two days of 2025 picked per test run: runs left in the metadata DB by earlier sessions never overlap."""
    first = date(2025, 4, 1) + timedelta(days=2 * (int(unique, 16) % 120))
    return [first, first + timedelta(days=1)]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every serving mart table, all columns, sorted; and what serving.freshness says was loaded."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(dsn) as conn:
        for spec in MARTS.values():
            rows = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier("serving", spec.serving_table)))
            tables[spec.serving_table] = sorted(rows.fetchall(), key=lambda row: tuple(map(repr, row)))
        tables["freshness"] = conn.execute(
            "SELECT mart, interval_start, interval_end, rows FROM serving.freshness ORDER BY 1, 2, 3"
        ).fetchall()
    return tables


def _tenant_rows(dsn: str, spec: MartSpec, tenant: str, day: date) -> tuple[int, Any]:
    """Rows of ``tenant`` on ``day`` in the mart's serving table, and the sum of its hand-checked column."""
    column, _ = EXPECTED_TOTALS[spec.name]
    assert spec.date_column is not None
    query = sql.SQL("SELECT count(*), sum({}) FROM {} WHERE tenant_id = %s AND {} = %s").format(
        sql.Identifier(column), sql.Identifier("serving", spec.serving_table), sql.Identifier(spec.date_column)
    )
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, (tenant, day)).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def _airflow(stack: Any, *args: str) -> subprocess.CompletedProcess[str]:
    from lakehouse.scripts.airflow_stack import airflow_argv

    return subprocess.run(airflow_argv(*args), env=stack.env(), capture_output=True, text=True, check=False)


@contextmanager
def _running_airflow(env: Settings) -> Iterator[Any]:
    """The stack's Airflow (api-server, scheduler, dag-processor, triggerer) for the duration of the block."""
    from lakehouse.scripts.airflow_stack import AirflowStack

    stack = AirflowStack(env)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def _backfill(stack: Any, metadata_dsn: str, days: list[date]) -> list[tuple[date, date, str]]:
    """Create the backfill over ``days`` (reprocessing completed days) and wait until its runs finish; returns each
    run's data interval and state."""
    with psycopg.connect(metadata_dsn, autocommit=True) as conn:
        # an interrupted earlier session may have left an active backfill: only one may run per DAG
        conn.execute("UPDATE backfill SET completed_at = now() WHERE dag_id = 'gold_marts' AND completed_at IS NULL")
    deadline = time.monotonic() + 120
    while (unpause := _airflow(stack, "dags", "unpause", "gold_marts")).returncode != 0:
        assert time.monotonic() < deadline, f"the dag-processor never registered gold_marts: {unpause.stderr}"
        time.sleep(3)
    created = _airflow(
        stack,
        "backfill",
        "create",
        "--dag-id=gold_marts",
        f"--from-date={days[0].isoformat()}",
        f"--to-date={days[-1].isoformat()}",
        "--reprocess-behavior=completed",
    )
    assert created.returncode == 0, created.stdout + created.stderr
    with psycopg.connect(metadata_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT max(id) FROM backfill WHERE dag_id = 'gold_marts'").fetchone()
        assert row is not None
        backfill_id = row[0]
        deadline = time.monotonic() + BACKFILL_TIMEOUT_S
        while True:
            runs = conn.execute(
                "SELECT data_interval_start, data_interval_end, state FROM dag_run WHERE backfill_id = %s "
                "ORDER BY logical_date",
                (backfill_id,),
            ).fetchall()
            if len(runs) == len(days) and all(state in ("success", "failed") for *_, state in runs):
                break
            assert time.monotonic() < deadline, f"backfill {backfill_id} still running: {runs}"
            time.sleep(5)
        failed = conn.execute(
            "SELECT ti.run_id, ti.task_id, ti.state FROM task_instance ti JOIN dag_run dr "
            "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id WHERE dr.backfill_id = %s AND ti.state <> 'success'",
            (backfill_id,),
        ).fetchall()
    assert not failed, f"backfill tasks did not succeed (logs under {stack.settings.home}/airflow/logs): {failed}"
    return [(start.date(), end.date(), state) for start, end, state in runs]


def test_backfill_over_a_range_equals_the_daily_runs(
    isolated_serving: Settings,
    airflow_db: Settings,
    spark_connect: Settings,
    spark: Any,
    unique: str,
    days: list[date],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    env, dsn = isolated_serving, isolated_serving.postgres_dsn()
    tenants = {day: f"t{index}-{unique}" for index, day in enumerate(days)}
    for day, tenant in tenants.items():
        write_silver(spark, env, tenant, day)

    # 1. the daily runs: each day's run of the DAG, its tasks in this process on this process's Spark driver
    monkeypatch.setenv("LAKEHOUSE_SPARK_DEPLOY", "in-process")
    settings.cache_clear()
    dag = DagBag(dag_folder=str(ROOT / "dags" / "gold_marts.py")).get_dag("gold_marts")
    assert dag is not None
    assert len(dag.tasks) == 3 * len(MARTS)
    for day in days:
        # a manual run covers the last whole interval before it: [day, day + 1). Its logical date is not midnight,
        # so the backfill creates runs of its own instead of re-running these (they would keep their interval)
        run = dag.test(logical_date=_midnight(day) + timedelta(days=1, hours=12))
        assert run.state == "success", f"daily run for {day}: {run.state}"
        assert (run.data_interval_start.date(), run.data_interval_end.date()) == (day, day + timedelta(days=1))
    daily = _snapshot(dsn)

    for spec in MARTS.values():
        if spec.load_mode == "full":
            assert len(daily[spec.serving_table]) == EXPECTED_FULL_ROWS[spec.name], spec.name
            continue
        for day, tenant in tenants.items():
            assert _tenant_rows(dsn, spec, tenant, day) == (EXPECTED_ROWS[spec.name], EXPECTED_TOTALS[spec.name][1])
    loaded = {(mart, start) for mart, start, _, _ in daily["freshness"]}
    assert loaded >= {(name, day) for name in MARTS for day in days}

    # 2. the backfill, by the scheduler, with Gold tasks as Spark Connect clients
    with psycopg.connect(dsn) as conn:
        backfill_started = conn.execute("SELECT now()").fetchone()
    monkeypatch.setenv("LAKEHOUSE_SPARK_DEPLOY", "connect")
    monkeypatch.setenv("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE", "False")  # backfill runs only, no scheduled run
    settings.cache_clear()
    with _running_airflow(settings()) as stack:
        runs = _backfill(stack, settings().postgres_dsn(settings().airflow.metadata_database), days)
        health = stack.health()
    assert runs == [(day, day + timedelta(days=1), "success") for day in days]
    # what the UI's home page shows: every component of the local stack, the triggerer included, heartbeating
    assert "triggerer" in health and health == dict.fromkeys(health, "healthy"), health

    assert _snapshot(dsn) == daily
    with psycopg.connect(dsn) as conn:
        reloaded = conn.execute(
            "SELECT mart, interval_start FROM serving.freshness WHERE loaded_at > %s", backfill_started
        ).fetchall()
    assert set(reloaded) >= {(name, day) for name in MARTS for day in days}, "the backfill must reload every day"
