"""``make demo``: the whole path on the local stack, end to end, in one command.

Kafka (synthetic events of every type, with duplicates, malformed messages and rule breakers) -> Bronze ->
Silver (available-now) -> the ``gold_marts`` DAG run by the Airflow scheduler -> a BI query on PostgreSQL.
The events are seeded and dated yesterday, so running the demo twice the same day adds no rows anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

from lakehouse.config.settings import Settings
from lakehouse.config.specs import load_event_types
from lakehouse.scripts.airflow_stack import airflow_argv, airflow_env
from lakehouse.scripts.errors import StackError
from lakehouse.scripts.stack import LocalStack

DEMO_SEED = 20261122
EVENTS_PER_TYPE = 4000
BI_QUERY = """
SELECT tenant_id, region,
       sum(orders_placed)        AS orders,
       sum(orders_cancelled)     AS cancelled,
       sum(units)                AS units,
       sum(gross_revenue)        AS revenue,
       round(sum(gross_revenue) / nullif(sum(orders_placed), 0), 2) AS avg_order_value
FROM serving.fct_orders_daily
WHERE order_date = %s
GROUP BY tenant_id, region
ORDER BY tenant_id, revenue DESC
"""


def _airflow(settings: Settings, *args: str) -> str:
    env = {**os.environ, **airflow_env(settings)}
    result = subprocess.run(airflow_argv(*args), env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"`airflow {' '.join(args)}` failed: {result.stderr.strip()[-1500:]}")
    return result.stdout


def trigger_and_wait(
    settings: Settings, dag_id: str, logical_date: datetime, console: Console, timeout: float = 900
) -> str:
    """Unpause and trigger a DAG run through the scheduler; wait for it; return its final state."""
    deadline = time.monotonic() + 120
    while True:
        listed = _airflow(settings, "dags", "list", "-o", "json")
        if any(d.get("dag_id") == dag_id for d in json.loads(listed or "[]")):
            break
        if time.monotonic() > deadline:
            raise StackError(f"DAG {dag_id} was not parsed within 120s; check {settings.home}/run/airflow-*.log")
        time.sleep(3)
    _airflow(settings, "dags", "unpause", dag_id)
    run_id = f"demo__{logical_date:%Y-%m-%d}__{int(time.time())}"
    _airflow(settings, "dags", "trigger", dag_id, "--run-id", run_id, "--logical-date", logical_date.isoformat())
    console.print(f"triggered {dag_id} run [bold]{run_id}[/] (data interval: the day before {logical_date:%Y-%m-%d})")
    end = time.monotonic() + timeout
    state = "queued"
    while time.monotonic() < end:
        runs = json.loads(_airflow(settings, "dags", "list-runs", dag_id, "-o", "json") or "[]")
        state = next((r["state"] for r in runs if r["run_id"] == run_id), state)
        if state in ("success", "failed"):
            return state
        time.sleep(5)
    raise StackError(f"DAG run {run_id} still {state} after {timeout:.0f}s; see the Airflow UI")


def run_demo(settings: Settings, console: Console) -> None:
    """Set up and run everything; print the BI query's result and how to look around."""
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.generator import GeneratorOptions, generate
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.postgres.migrate import migrate
    from lakehouse.spark.submit import run_spark_job

    started = time.monotonic()
    console.rule("1/6 local stack")
    stack = LocalStack(settings)
    stack.up()
    migrate(settings.postgres_dsn())
    ensure_topics(settings)

    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    console.rule(f"2/6 produce {EVENTS_PER_TYPE} events per type for {day:%Y-%m-%d}")
    options = GeneratorOptions(
        tenants=5,
        seed=DEMO_SEED,
        start=day,
        days=1,
        duplicate_fraction=0.03,
        malformed_fraction=0.01,
        invalid_fraction=0.02,
        late_fraction=0.0,
        v2_fraction=0.5,
    )
    with EventProducer(settings) as producer:
        for name in sorted(load_event_types()):
            sent = producer.send_events(name, generate(name, EVENTS_PER_TYPE, options), total=EVENTS_PER_TYPE)
            console.print(f"{name}: {sent} messages")

    console.rule("3/6 Bronze (available-now)")
    run_spark_job(settings, "lakehouse.spark.jobs.bronze", ["--available-now"])
    console.rule("4/6 Silver (available-now)")
    run_spark_job(settings, "lakehouse.spark.jobs.silver", ["--available-now"])

    console.rule("5/6 gold_marts DAG through the Airflow scheduler")
    # a manual run covers the schedule interval that ends at its logical date: [day, day + 1)
    state = trigger_and_wait(settings, "gold_marts", day + timedelta(days=1), console)
    if state != "success":
        raise StackError(f"gold_marts run ended {state}: open {stack.airflow.url}/dags/gold_marts for the task logs")

    console.rule("6/6 BI query on PostgreSQL")
    with psycopg.connect(settings.postgres_dsn()) as conn:
        cursor = conn.execute(BI_QUERY, (day.date(),))
        columns = [c.name for c in cursor.description or []]
        rows = cursor.fetchall()
    table = Table(*columns, title=f"serving.fct_orders_daily, {day:%Y-%m-%d}")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)
    console.print(f"demo finished in {time.monotonic() - started:.0f}s; the stack keeps running:")
    console.print(f"  Airflow UI  {stack.airflow.url}  (DAGs gold_marts, streams_available_now)")
    console.print(f"  psql        psql '{settings.postgres_dsn()}'")
    console.print(f'  shell env   eval "$({Path(".venv/bin/lakehouse")} stack env)"')
    console.print("  stop        make down")
