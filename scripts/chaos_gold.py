"""The Gold half of the chaos run: after the stream's checks, the ``gold_marts`` DAG runs through the stack's own
Airflow (scheduler, dag-processor, triggerer, api-server, LocalExecutor) over the days the stream wrote, with the
Gold tasks as clients of the stack's Spark Connect server, and two faults:

- during the first day's run, once some tasks have succeeded and one is running, ``kill -9`` of the scheduler's
  process group (the scheduler and the executor's workers with their tasks); it is started again 5 s later, as a
  service manager would;
- during the next day's run, while a ``load`` task's COPY into the serving database is in flight (seen in
  ``pg_stat_activity``, watched every 10 ms while a load task runs), PostgreSQL stops as in a crash (``pg_ctl stop
  -m immediate``: no checkpoint, WAL recovery at the restart) and starts again 5 s later. The load fails and is
  retried; PostgreSQL holds Airflow's metadata as well as the serving tables, so the scheduler and api-server lose
  their database too.

An Airflow component that exits (a scheduler that lost its database) is started again at once, and counted.
For each fault the run reports how long until every task that was running when it hit had succeeded, and those
tasks' tries (the retry is how Airflow's audit shows the fault). The checks: every run succeeded, and every
serving table holds exactly its Gold Delta table's rows (serving = Gold), compared row by row.

Chaos-only Airflow settings (``AIRFLOW_CHAOS_ENV``): no scheduled runs, and a task whose process died is failed
(and retried) after 60 s without a heartbeat instead of the default 300 s."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from pyspark.sql import SparkSession
from rich.console import Console

from lakehouse.config.marts import MartSpec, load_marts
from lakehouse.config.settings import Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.scripts.errors import BenchError

SCHEDULER_KILL = "scheduler_kill"
POSTGRES_CRASH = "postgres_crash"
DAG_ID = "gold_marts"
RESTART_AFTER_S = 5.0
RUN_TIMEOUT_S = 1800.0
AIRFLOW_CHAOS_ENV = {
    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
}


@dataclass
class GoldFault:
    """One fault during a gold_marts run: its moment (seconds after the run was triggered), the tasks running
    then, how long until they had all succeeded, and the try each succeeded on."""

    kind: str
    day: str
    at_s: float
    running: list[str]
    recovered_after_s: float | None = None
    tries: dict[str, int] = field(default_factory=dict)


@dataclass
class GoldChaosResult:
    """What the Gold half did and found; ``passed`` is the conjunction of its checks."""

    runs: dict[str, str] = field(default_factory=dict)
    run_seconds: dict[str, float] = field(default_factory=dict)
    faults: list[GoldFault] = field(default_factory=list)
    retried_tasks: int = 0
    airflow_restarts: int = 0
    serving: dict[str, dict[str, int]] = field(default_factory=dict)
    passed: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def comparable(value: Any) -> Any:
    """A value from psycopg or from Spark's ``collect()`` in a form both compare equal in: aware datetimes (Spark
    gives naive local ones), floats rounded to 9 places, decimals normalised."""
    if isinstance(value, datetime):
        return value.astimezone()
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, Decimal):
        return value.normalize()
    return value


def sorted_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows made comparable (``comparable``) in one order, NULLs last."""
    normalised = [tuple(comparable(v) for v in row) for row in rows]
    return sorted(normalised, key=lambda row: tuple((v is None, str(v)) for v in row))


def serving_against_gold(spark: SparkSession, settings: Settings, spec: MartSpec) -> dict[str, int]:
    """One mart's serving table against its whole Gold Delta table: rows in each, Gold rows serving lacks, and
    serving rows Gold lacks (multisets, so a row loaded twice counts)."""
    gold = spark.read.format("delta").load(settings.storage.table_path("gold", spec.name))
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, gold.columns)), sql.Identifier("serving", spec.serving_table)
    )
    with psycopg.connect(settings.postgres_dsn()) as conn:
        served = sorted_rows(conn.execute(query).fetchall())
    built = sorted_rows([tuple(row) for row in gold.collect()])
    unexpected = []
    remaining: dict[tuple[Any, ...], int] = {}
    for row in built:
        remaining[row] = remaining.get(row, 0) + 1
    for row in served:
        if remaining.get(row, 0) > 0:
            remaining[row] -= 1
        else:
            unexpected.append(row)
    missing = [row for row, count in remaining.items() for _ in range(count)]
    return {"gold": len(built), "serving": len(served), "missing": len(missing), "unexpected": len(unexpected)}


def _clear_serving(settings: Settings) -> None:
    """Empty every mart's serving table, rollups and freshness rows: the chaos stack's PostgreSQL outlives runs."""
    tables = [spec.serving_table for spec in load_marts().values()]
    tables += [rollup.table for spec in load_marts().values() for rollup in spec.rollups]
    with psycopg.connect(settings.postgres_dsn()) as conn:
        for table in [*tables, "freshness"]:
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier("serving", table)))


class _Orchestrator:
    """The stack's Airflow and PostgreSQL as the run drives and breaks them."""

    def __init__(self, stack: Any, console: Console) -> None:
        self.stack = stack
        self.console = console
        self.metadata_dsn = stack.settings.postgres_dsn(stack.settings.airflow.metadata_database)
        self.serving_dsn = stack.settings.postgres_dsn()
        self.restarts = 0

    def tend(self) -> None:
        """Start again every Airflow component that exited, once PostgreSQL answers (the schema is migrated)."""
        down = [name for name, up in self.stack.airflow.running().items() if not up]
        if down and self.stack.postgres.running():
            self.restarts += len(down)
            self.console.print(f"chaos: Airflow {', '.join(down)} not running; starting again")
            self.stack.airflow.start_components()

    def copy_seen_within(self, seconds: float) -> bool:
        """Watch the serving database every 10 ms for up to ``seconds``: True once a COPY into it runs (a load
        writing its rows; a small one lasts a fraction of a second)."""
        deadline = time.monotonic() + seconds
        try:
            with psycopg.connect(self.serving_dsn, connect_timeout=3, autocommit=True) as conn:
                while time.monotonic() < deadline:
                    row = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state = 'active' AND query ILIKE 'COPY %'"
                    ).fetchone()
                    if row and row[0]:
                        return True
                    time.sleep(0.01)
        except psycopg.OperationalError:
            pass
        return False

    def tasks(self, run_id: str) -> dict[str, tuple[str | None, int]] | None:
        """Each task's (state, try number) in a run; None while the metadata database does not answer."""
        try:
            with psycopg.connect(self.metadata_dsn, connect_timeout=3) as conn:
                rows = conn.execute(
                    "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s",
                    (DAG_ID, run_id),
                ).fetchall()
        except psycopg.OperationalError:
            return None
        return {task: (state, tries) for task, state, tries in rows}

    def kill_scheduler(self) -> None:
        service = self.stack.airflow.services["scheduler"]
        pid = service.pid()
        if pid is None:
            raise BenchError("the chaos run found no Airflow scheduler of its stack to kill")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while service.pid() is not None:
            time.sleep(0.2)
        time.sleep(RESTART_AFTER_S)
        self.tend()

    def crash_postgres(self) -> None:
        self.stack.postgres.stop(mode="immediate")
        time.sleep(RESTART_AFTER_S)
        self.stack.postgres.start()
        self.tend()


def _run_day(
    orchestrator: _Orchestrator,
    day: date,
    fault: tuple[str, Callable[[dict[str, tuple[str | None, int]]], bool]] | None,
    result: GoldChaosResult,
) -> None:
    """Trigger the day's run, inject ``fault`` (its kind and when to strike) once its condition holds, and wait
    for the run to end, recording the fault's recovery."""
    from lakehouse.scripts.demo import AirflowApi

    settings = orchestrator.stack.settings
    api = AirflowApi(settings)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    api.delete_runs(DAG_ID, start.isoformat())  # an earlier chaos run's: each try counted is this run's
    run_id = api.trigger(DAG_ID, start, start + timedelta(days=1), prefix="chaos")
    orchestrator.console.print(f"chaos: {DAG_ID} run {run_id} for {day}")
    triggered = time.monotonic()
    record: GoldFault | None = None
    hit_at = 0.0
    while time.monotonic() - triggered < RUN_TIMEOUT_S:
        orchestrator.tend()
        tasks = orchestrator.tasks(run_id)
        if tasks is None:
            time.sleep(1)
            continue
        if fault is not None and record is None and fault[1](tasks):
            running = sorted(t for t, (state, _) in tasks.items() if state == "running")
            record = GoldFault(fault[0], day.isoformat(), round(time.monotonic() - triggered, 1), running)
            result.faults.append(record)
            orchestrator.console.print(f"chaos: {fault[0]} at {record.at_s}s while {', '.join(running)} ran")
            hit_at = time.monotonic()
            if fault[0] == SCHEDULER_KILL:
                orchestrator.kill_scheduler()
            else:
                orchestrator.crash_postgres()
            continue
        if (
            record is not None
            and record.recovered_after_s is None
            and all(tasks.get(t, (None, 0))[0] == "success" for t in record.running)
        ):
            record.recovered_after_s = round(time.monotonic() - hit_at, 1)
            record.tries = {t: tasks[t][1] for t in record.running}
            orchestrator.console.print(f"chaos: recovered from {record.kind} after {record.recovered_after_s}s")
        states = {state for state, _ in tasks.values()}
        if tasks and states <= {"success", "failed", "upstream_failed", "skipped"}:
            with contextlib.suppress(Exception):
                state = api.state(DAG_ID, run_id)
                if state in ("success", "failed"):
                    result.runs[day.isoformat()] = state
                    result.run_seconds[day.isoformat()] = round(time.monotonic() - triggered, 1)
                    result.retried_tasks += sum(1 for _, tries in tasks.values() if tries > 1)
                    return
        time.sleep(1)
    raise BenchError(f"{DAG_ID} run {run_id} did not end within {RUN_TIMEOUT_S:.0f}s; see the Airflow task logs")


def _after_successes(rng: random.Random, suffix: str) -> Callable[[dict[str, tuple[str | None, int]]], bool]:
    """Strike once a random number of tasks (1 to 6) have succeeded and a task ending in ``suffix`` runs."""
    needed = rng.randint(1, 6)

    def ready(tasks: dict[str, tuple[str | None, int]]) -> bool:
        succeeded = sum(1 for state, _ in tasks.values() if state == "success")
        running = [t for t, (state, _) in tasks.items() if state == "running" and t.endswith(suffix)]
        return succeeded >= needed and bool(running)

    return ready


def run_gold_chaos(
    spark: SparkSession, stack: Any, days: list[date], seed: int, console: Console | None = None
) -> GoldChaosResult:
    """The run described in the module docstring over ``days`` (the first gets the scheduler kill, the second the
    PostgreSQL crash, any others none), on the lake and configuration this process points at; ``stack`` is the
    chaos stack (a ``LocalStack``), whose Spark Connect server and Airflow it starts."""
    from lakehouse.scripts.demo import AirflowApi
    from lakehouse.scripts.postgres_server import ensure_database

    console = console or Console()
    rng = random.Random(seed)
    result = GoldChaosResult()
    settings = stack.settings
    os.environ.update(AIRFLOW_CHAOS_ENV)
    _clear_serving(settings)
    ensure_database(settings.postgres_dsn(), settings.airflow.metadata_database)
    stack.spark.start()
    stack.airflow.start()
    AirflowApi(settings).wait_for_dag(DAG_ID)
    orchestrator = _Orchestrator(stack, console)
    during_a_load = _after_successes(rng, ".load")
    faults = [
        (SCHEDULER_KILL, _after_successes(rng, "")),
        (POSTGRES_CRASH, lambda tasks: during_a_load(tasks) and orchestrator.copy_seen_within(2.0)),
    ]
    for index, day in enumerate(days):
        _run_day(orchestrator, day, faults[index] if index < len(faults) else None, result)
    result.airflow_restarts = orchestrator.restarts
    lake = current_settings()  # the run's lake, which this process points at (the stack's settings predate it)
    result.serving = {name: serving_against_gold(spark, lake, spec) for name, spec in load_marts().items()}
    result.passed = bool(
        result.runs
        and all(state == "success" for state in result.runs.values())
        and len(result.faults) == min(len(days), len(faults))
        and all(f.recovered_after_s is not None for f in result.faults)
        and all(not c["missing"] and not c["unexpected"] and c["gold"] for c in result.serving.values())
    )
    return result
