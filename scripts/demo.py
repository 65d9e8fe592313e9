"""``make demo``: the whole path on the local stack, end to end, in one command.

Kafka (synthetic events of every type, with duplicates, malformed messages and rule breakers) -> Bronze ->
Silver (available-now) -> the ``gold_marts`` DAG run by the Airflow scheduler -> a BI query on PostgreSQL.
The events are seeded and dated yesterday, so running the demo twice the same day adds no rows anywhere.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from rich.console import Console
from rich.table import Table

from lakehouse.config.settings import Settings
from lakehouse.config.specs import load_event_types
from lakehouse.scripts.errors import PrerequisiteError, StackError
from lakehouse.scripts.stack import COMPONENTS, LocalStack

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


class AirflowApi:
    """The few calls of Airflow's REST API (v2) the demo needs; locally every user is an admin."""

    def __init__(self, settings: Settings) -> None:
        self.base = f"http://localhost:{settings.airflow.port}"
        self._token: str | None = None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._token is None:
            with urllib.request.urlopen(f"{self.base}/auth/token", timeout=10) as response:  # noqa: S310
                self._token = json.loads(response.read())["access_token"]
        request = urllib.request.Request(  # noqa: S310 - localhost only
            f"{self.base}/api/v2{path}",
            method=method,
            data=json.dumps(body).encode() if body else None,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            answer = response.read()
        return json.loads(answer) if answer else {}

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Wait until the dag-processor has parsed the DAG."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._request("GET", f"/dags/{dag_id}")
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or time.monotonic() > deadline:
                    raise StackError(
                        f"DAG {dag_id} is not available in Airflow ({exc}); see .lakehouse/run/airflow-*.log"
                    ) from exc
                time.sleep(3)
            else:
                return

    def trigger(self, dag_id: str, start: datetime, end: datetime, prefix: str = "demo") -> str:
        """Run the DAG for the data interval [start, end) and return the run id: a new run, or, when a run for
        that logical date exists (a second demo), that run cleared and run again.

        The run is created while the DAG is still paused and the DAG unpaused afterwards: unpausing first would
        let the scheduler create the run of the latest interval on its own (catchup is off), for the same
        logical date, racing the request.
        """
        day = start.isoformat()
        run_id = self._clear_existing_run(dag_id, day)
        if run_id is None:
            run_id = f"{prefix}__{start:%Y-%m-%d}"
            try:
                self._request(
                    "POST",
                    f"/dags/{dag_id}/dagRuns",
                    {
                        "dag_run_id": run_id,
                        "logical_date": day,
                        "data_interval_start": day,
                        "data_interval_end": end.isoformat(),
                    },
                )
            except urllib.error.HTTPError as exc:
                run_id = self._clear_existing_run(dag_id, day) if exc.code == 409 else None
                if run_id is None:
                    raise
        self._request("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        return run_id

    def _runs_of(self, dag_id: str, day: str) -> list[dict[str, Any]]:
        """The DAG's runs of logical date ``day``."""
        path = f"/dags/{dag_id}/dagRuns?logical_date_gte={quote(day)}&logical_date_lte={quote(day)}"
        return list(self._request("GET", path)["dag_runs"])

    def _clear_existing_run(self, dag_id: str, day: str) -> str | None:
        """The run for logical date ``day``, cleared so it runs again; None if there is none."""
        runs = self._runs_of(dag_id, day)
        if not runs:
            return None
        run_id = str(runs[0]["dag_run_id"])
        self._request("POST", f"/dags/{dag_id}/dagRuns/{quote(run_id)}/clear", {"dry_run": False})
        return run_id

    def delete_runs(self, dag_id: str, day: str) -> None:
        """Delete the runs of logical date ``day`` (with their task history), so that the next is a new run."""
        for run in self._runs_of(dag_id, day):
            self._request("DELETE", f"/dags/{dag_id}/dagRuns/{quote(str(run['dag_run_id']))}")

    def state(self, dag_id: str, run_id: str) -> str:
        """State of one DAG run."""
        return str(self._request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])


def trigger_and_wait(settings: Settings, dag_id: str, day: datetime, console: Console, timeout: float = 900) -> str:
    """Run a DAG for one day through the scheduler; wait for it; return its final state."""
    api = AirflowApi(settings)
    api.wait_for_dag(dag_id)
    run_id = api.trigger(dag_id, day, day + timedelta(days=1))
    console.print(f"triggered {dag_id} run [bold]{run_id}[/] for {day:%Y-%m-%d}; watch it at {api.base}/dags/{dag_id}")
    deadline = time.monotonic() + timeout
    state = "queued"
    while time.monotonic() < deadline:
        state = api.state(dag_id, quote(run_id))
        if state in ("success", "failed"):
            return state
        time.sleep(5)
    raise StackError(f"DAG run {run_id} still {state} after {timeout:.0f}s; see the Airflow UI")


def start_superset(stack: LocalStack, console: Console) -> bool:
    """Start Superset where the environment has it; a failure is one line, and the demo goes on without it."""
    if not stack.superset.configured:
        return False
    try:
        stack.up(("superset",))
    except (PrerequisiteError, StackError) as exc:
        console.print(f"[bold yellow]Superset not started[/] (the demo goes on without it): {exc}", highlight=False)
        return False
    return True


def run_demo(settings: Settings, console: Console) -> None:
    """Set up and run everything; print the BI query's result and how to look around."""
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.generator import GeneratorOptions, generate
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.postgres.migrate import migrate
    from lakehouse.spark.submit import run_spark_job

    started = time.monotonic()
    console.rule(f"1/5 the {settings.name} stack")
    stack = LocalStack(settings)
    stack.up(tuple(c for c in COMPONENTS if c != "superset"))
    migrate(settings.postgres_dsn())
    superset_up = start_superset(stack, console)
    ensure_topics(settings)

    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    console.rule(f"2/5 produce {EVENTS_PER_TYPE} events per type for {day:%Y-%m-%d}")
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

    console.rule("3/5 Kafka -> Bronze and Silver (the streaming job, available-now)")
    run_spark_job(settings, "lakehouse.spark.jobs.stream", ["--available-now"])

    console.rule("4/5 gold_marts DAG through the Airflow scheduler")
    state = trigger_and_wait(settings, "gold_marts", day, console)
    if state != "success":
        raise StackError(f"gold_marts run ended {state}: open {stack.airflow.url}/dags/gold_marts for the task logs")

    console.rule("5/5 BI query on PostgreSQL")
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
    if superset_up:
        console.print(f"  Superset    {stack.superset.url}  (user admin; password: lakehouse stack env --show-secrets)")
    console.print(f"  psql        psql '{settings.postgres_dsn()}'")
    console.print(f'  shell env   eval "$({Path(".venv/bin/lakehouse")} stack env)"')
    console.print("  stop        make down")
