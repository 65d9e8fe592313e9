"""The golden-data suite: the same seeded events, with every fault class, through Bronze, Silver, the
``gold_marts`` DAG and the loads on each environment; then every serving table is compared across them.

- ``local``: Spark ``local[2]`` on the local file system; Gold jobs are clients of the stack's Spark Connect server.
- ``cluster``: ``config/environments/cluster.yaml`` as its stack runs on this machine: a Spark standalone master and
  two workers, the lake and the streaming checkpoints at ``s3a://`` on s3proxy; Gold jobs are clients of a Spark
  Connect server whose driver runs against the cluster.

Both read the same Kafka topics and load serving databases of their own on the suite's PostgreSQL. Each step is
a command a user runs. Bronze and Silver: ``lakehouse stream --available-now`` on the cluster; on local, the
``streams_available_now`` DAG (``airflow dags test``), whose second task also runs the streaming revenue windows
into Gold and serving. Then ``airflow dags test gold_marts <day>``, whose daily build replaces those windows. The
accounting and the streamed revenue are checked against figures computed here from the generated messages, not by
the code under test.

Then the local environment's day is reprocessed by ``airflow backfill create``, executed by the real scheduler
(api-server, scheduler, dag-processor, triggerer, LocalExecutor: every task its own process): a backfill must leave
every serving table exactly as the daily run did, and afterwards Airflow's health endpoint reports every component
healthy. docs/deploy.md says how to run this module against another cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from lakehouse.config.marts import load_marts
from lakehouse.config.settings import Settings, load_settings, settings
from lakehouse.kafka.generator import INVALID_FAULTS, MALFORMED_FAULTS, GeneratedMessage, GeneratorOptions, generate
from tests.conftest import suite_port
from tests.expected_orders import effective_faults, expected_mart, serving_rows

# the module's set-up runs both environments end to end: 344 s on a quiet machine (3e2c9df), 1,316 s on a busy one
pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(2700)]
BACKFILL_TIMEOUT_S = 900
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAY = date(2025, 4, 14)
EVENT_TYPES = ("orders", "customer_events", "device_metrics")
ENVIRONMENTS = ("local", "cluster")
# Each environment's `dags test` run of gold_marts covers [DAY, DAY + 1): a manual run covers the last whole interval
# before its logical date. The two differ, so that the runs can go side by side in the one Airflow metadata database
# (`dags test` replaces a run of the same DAG and logical date), and neither is at midnight, so that the backfill
# makes runs of its own instead of re-running these.
LOGICAL_DATES = {
    "local": f"{DAY + timedelta(days=1)}T06:00:00+00:00",
    "cluster": f"{DAY + timedelta(days=1)}T12:00:00+00:00",
}
# the cluster environment's stack on ports of the suite's own (the local stack's are in tests/conftest.py)
CLUSTER_ENV = {
    "LAKEHOUSE_SPARK_MASTER_PORT": suite_port(27077),
    "LAKEHOUSE_SPARK_MASTER_WEB_PORT": suite_port(28090),
    "LAKEHOUSE_S3_PORT": suite_port(29000),
    "LAKEHOUSE_SPARK_CONNECT_PORT": suite_port(25012),
}
# the mart the streams DAG also writes, through its revenue task (streaming windows, then the daily build's)
STREAMED_MART = "order_revenue_5min"
# a double is compared to 9 decimals: the two engines may add the same values in another order
DOUBLE_DIGITS = 9
# the password of the login both environments' serving DSN names (the server checks it): it travels through the
# Airflow connection, the Spark jobs and the loads, and must be in no log
FAKE_PG_PASSWORD = "golden-fake-pg-password-5f1c"
GOLDEN_LOGIN = "golden_suite"


@dataclass(frozen=True)
class Golden:
    """The suite's input: a private copy of config/ (topics renamed) and what was produced to each topic."""

    config: Path
    unique: str
    messages: dict[str, list[GeneratedMessage]]


@dataclass(frozen=True)
class EnvironmentRun:
    """What one environment produced: per-table checksums of the serving tables and the stream's accounting."""

    name: str
    dsn: str
    environ: dict[str, str]
    checksums: dict[str, tuple[int, str]]
    accounting: dict[str, dict[str, int]]
    orders_day: dict[tuple[Any, ...], tuple[Any, ...]]
    gates: dict[str, list[str]]
    # (orders placed, revenue) over serving.order_revenue_5min as the streams DAG left it (local only)
    streamed_revenue: tuple[int, Decimal] | None


def expected_accounting(messages: list[GeneratedMessage]) -> dict[str, int]:
    """What the stream must report for one topic, from the generator's own labels."""
    faults = effective_faults(messages)
    clean = [m for m, f in zip(messages, faults, strict=True) if f is None]
    distinct = {m.event["event_id"] for m in clean if m.event}
    return {
        "input_rows": len(messages),
        "dead_letter_rows": sum(f in MALFORMED_FAULTS for f in faults),
        "quarantined_rows": sum(f in INVALID_FAULTS for f in faults),
        "deduplicated_rows": len(clean) - len(distinct),
        "output_rows": len(distinct),
    }


@pytest.fixture(scope="module")
def golden(kafka_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Golden:
    """Topics of the suite's own, with the seeded events of every type produced once."""
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer

    unique = uuid.uuid4().hex[:8]
    config = tmp_path_factory.mktemp("golden") / "config"
    shutil.copytree(ROOT / "config", config, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for path in (config / "event_types").glob("*.yaml"):
        path.write_text(path.read_text().replace(f"topic: {path.stem}\n", f"topic: {path.stem}_{unique}\n"))
    environ = {**os.environ, "LAKEHOUSE_CONFIG_DIR": str(config)}
    settings = load_settings("local", environ)
    options = GeneratorOptions(
        tenants=4,
        seed=1614,
        start=datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC),
        days=1,
        v2_fraction=0.5,
        duplicate_fraction=0.05,
        late_fraction=0.02,
        malformed_fraction=0.04,
        invalid_fraction=0.05,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAKEHOUSE_CONFIG_DIR", str(config))  # the producer resolves topics through the config folder
        ensure_topics(settings)
        messages = {name: list(generate(name, 700, options)) for name in EVENT_TYPES}
        with EventProducer(settings) as producer:
            for name, batch in messages.items():
                assert producer.send_events(name, batch, total=len(batch)) == len(batch)
    return Golden(config, unique, messages)


def _with_database(dsn: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(dsn).set(database=database).render_as_string(hide_password=False)


def _golden_login(admin: str) -> None:
    """The superuser login the environments use, with the suite's fake password."""
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (GOLDEN_LOGIN,)).fetchone()
        verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
        conn.execute(
            sql.SQL("{} {} LOGIN SUPERUSER PASSWORD {}").format(
                verb, sql.Identifier(GOLDEN_LOGIN), sql.Literal(FAKE_PG_PASSWORD)
            )
        )


def _environment(name: str, golden: Golden, dsn: str, scratch: Path) -> dict[str, str]:
    from sqlalchemy.engine import make_url

    url = make_url(dsn).set(username=GOLDEN_LOGIN, password=FAKE_PG_PASSWORD).difference_update_query(["passfile"])
    dsn = url.render_as_string(hide_password=False)
    environ = {
        **os.environ,
        "LAKEHOUSE_ENV": name,
        "LAKEHOUSE_CONFIG_DIR": str(golden.config),
        "LAKEHOUSE_PG_DSN": dsn,
        "AIRFLOW_CONN_LAKEHOUSE_POSTGRES": dsn,
        # Gold jobs are Spark Connect clients in both, as the environments deploy them
        "LAKEHOUSE_SPARK_DEPLOY": "connect",
    }
    if name == "cluster":
        environ.pop("LAKEHOUSE_SPARK_MASTER")  # the suite's local[2]: the cluster's comes from its environment file
        environ.update(CLUSTER_ENV)
        root = f"s3a://lakehouse/golden-{golden.unique}"
    else:
        root = str(scratch)
    environ["LAKEHOUSE_LAKE_ROOT"] = f"{root}/lake"
    environ["LAKEHOUSE_CHECKPOINT_ROOT"] = f"{root}/checkpoints"
    return environ


def _run(argv: list[str], environ: dict[str, str], what: str, log: Path) -> None:
    """Run one command; its whole output goes to ``log``, and its tail into the failure message."""
    with log.open("w") as out:
        result = subprocess.run(argv, env=environ, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=1800)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(f"{what} exited {result.returncode} (whole output: {log}):\n{tail}")


@pytest.fixture(scope="module")
def cluster_stack(
    postgres_stack: Settings, kafka_stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The cluster environment's own parts (object store, master and workers, its Spark Connect server), started
    with ``lakehouse stack up`` as a user would; the suite's Kafka and PostgreSQL serve both environments."""
    from lakehouse.scripts.stack import LocalStack

    environ = {k: v for k, v in os.environ.items() if k != "LAKEHOUSE_SPARK_MASTER"}
    environ |= {**CLUSTER_ENV, "LAKEHOUSE_ENV": "cluster", "LAKEHOUSE_SPARK_DEPLOY": "connect"}
    settings = load_settings("cluster", environ)
    log = tmp_path_factory.mktemp("cluster-stack") / "stack-up.log"
    _run([str(BIN / "lakehouse"), "stack", "up", "object-store", "cluster", "spark"], environ, "stack up", log)
    yield settings
    if os.environ.get("LAKEHOUSE_KEEP_TEST_STACK") != "1":
        stack = LocalStack(settings)
        stack.spark.stop()
        stack.cluster.stop()
        stack.object_store.stop()


def serving_checksums(dsn: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the sorted rows of every mart's serving table, over the mart's declared columns
    (doubles rounded to DOUBLE_DIGITS decimals). The streamed mart counts DAY's rows only: the local environment's
    revenue stream also leaves the windows of the late orders' earlier days, which no build of DAY replaces."""
    checksums = {}
    with psycopg.connect(dsn) as conn:
        for spec in load_marts(ROOT / "config").values():
            columns = ", ".join(
                f"round({c.name}::numeric, {DOUBLE_DIGITS})" if c.type == "double" else c.name for c in spec.columns
            )
            where = f"WHERE {spec.date_column} = '{DAY}'" if spec.name == STREAMED_MART else ""
            count, digest = conn.execute(
                f"SELECT count(*), coalesce(md5(string_agg(r, E'\\n' ORDER BY r)), '') "
                f"FROM (SELECT ROW({columns})::text AS r FROM serving.{spec.serving_table} {where}) rows"
            ).fetchone()
            checksums[spec.serving_table] = (int(count), str(digest))
    return checksums


def stream_accounting(dsn: str) -> dict[str, dict[str, int]]:
    """What the stream recorded per event type in lakehouse_meta.stream_batches, summed over its batches (the
    revenue stream's batches, query revenue_5min, are not the stream's)."""
    columns = ("input_rows", "output_rows", "dead_letter_rows", "quarantined_rows", "deduplicated_rows")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"SELECT query, {', '.join(f'sum({c})::bigint' for c in columns)} FROM lakehouse_meta.stream_batches "
            "WHERE query LIKE 'stream\\_%' GROUP BY query"
        ).fetchall()
    return {row[0].removeprefix("stream_"): dict(zip(columns, map(int, row[1:]), strict=True)) for row in rows}


def revenue_totals(dsn: str) -> tuple[int, Decimal]:
    """Orders placed and revenue over every window of serving.order_revenue_5min."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT sum(orders_placed), sum(total_revenue) FROM serving.order_revenue_5min").fetchone()
    assert row is not None and row[0] is not None, "the revenue stream loaded no windows"
    return int(row[0]), Decimal(row[1])


def dq_gates(dsn: str) -> dict[str, list[str]]:
    """The problems each mart's DQ gate found, for the marts it let through to a load."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT mart, problems FROM lakehouse_meta.gold_checks WHERE loaded_at IS NOT NULL"
        ).fetchall()
    return {mart: list(problems) for mart, problems in rows}


def _serving_database(admin: str, name: str) -> str:
    from lakehouse.postgres.migrate import migrate
    from lakehouse.scripts.postgres_server import ensure_database

    ensure_database(admin, name)
    dsn = _with_database(admin, name)
    migrate(dsn)
    return dsn


@pytest.fixture(scope="module")
def runs(
    golden: Golden,
    airflow_db: Settings,
    spark_connect: Settings,
    cluster_stack: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, EnvironmentRun]]:
    """Bronze, Silver, the Gold DAG and the loads, once per environment. The environments run side by side, each
    waiting mostly on its own JVMs."""
    admin = airflow_db.postgres_dsn("postgres")
    databases = {name: f"golden_{name}_{golden.unique}" for name in ENVIRONMENTS}
    _golden_login(admin)

    def run(name: str) -> EnvironmentRun:
        dsn = _serving_database(admin, databases[name])
        scratch = tmp_path_factory.mktemp(f"golden-{name}")
        environ = _environment(name, golden, dsn, scratch)
        streamed_revenue = None
        if name == "local":
            streams = [str(BIN / "airflow"), "dags", "test", "streams_available_now", LOGICAL_DATES[name]]
            _run(streams, environ, f"{name}: airflow dags test streams_available_now", scratch / "streams.log")
            streamed_revenue = revenue_totals(dsn)
        else:
            stream = [str(BIN / "lakehouse"), "stream", "--available-now"]
            _run(stream, environ, f"{name}: lakehouse stream", scratch / "stream.log")
        gold = [str(BIN / "airflow"), "dags", "test", "gold_marts", LOGICAL_DATES[name]]
        _run(gold, environ, f"{name}: airflow dags test gold_marts", scratch / "gold_marts.log")
        return EnvironmentRun(
            name,
            dsn,
            environ,
            serving_checksums(dsn),
            stream_accounting(dsn),
            serving_rows(dsn, DAY),
            dq_gates(dsn),
            streamed_revenue,
        )

    with ThreadPoolExecutor(max_workers=len(ENVIRONMENTS)) as pool:
        results = dict(zip(ENVIRONMENTS, pool.map(run, ENVIRONMENTS), strict=True))
    yield results
    with psycopg.connect(admin, autocommit=True) as conn:
        for database in databases.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_message_is_accounted_for(runs: dict[str, EnvironmentRun], golden: Golden, environment: str) -> None:
    expected = {name: expected_accounting(messages) for name, messages in golden.messages.items()}
    assert runs[environment].accounting == expected


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_orders_mart_and_dq_gates(runs: dict[str, EnvironmentRun], golden: Golden, environment: str) -> None:
    expected = expected_mart(golden.messages["orders"], ROOT / "config" / "reference" / "products" / "2026-01-01.csv")
    expected_day = {key: row for key, row in expected.items() if key[1] == DAY}
    assert expected_day, "the golden data should make fct_orders_daily rows for the day"
    assert runs[environment].orders_day == expected_day
    marts = {spec.name for spec in load_marts(ROOT / "config").values()}
    assert runs[environment].gates == {mart: [] for mart in marts}


def test_the_streams_dag_counts_every_placed_order_once_in_the_revenue_windows(
    runs: dict[str, EnvironmentRun], golden: Golden
) -> None:
    """All of the day arrives in one micro-batch, before any watermark, so no order is too late for its window."""
    faults = effective_faults(golden.messages["orders"])
    placed: dict[str, Decimal] = {}
    for message, fault in zip(golden.messages["orders"], faults, strict=True):
        event = message.event
        if fault is None and event is not None and event["event_type"] == "ORDER_PLACED":
            placed.setdefault(event["order_id"], Decimal(str(event["total_price"])))
    assert runs["local"].streamed_revenue == (len(placed), sum(placed.values(), Decimal(0)))


def test_serving_tables_are_identical_across_environments(runs: dict[str, EnvironmentRun]) -> None:
    local, cluster = runs["local"].checksums, runs["cluster"].checksums
    assert set(local) == {spec.serving_table for spec in load_marts(ROOT / "config").values()}
    empty = sorted(table for table, (count, _) in local.items() if count == 0)
    assert not empty, f"the golden data should fill every serving table: {empty} are empty"
    assert cluster == local


def test_refused_object_store_credentials_give_one_line(
    golden: Golden, runs: dict[str, EnvironmentRun], tmp_path: Path
) -> None:
    # the cluster run's serving database: the stream checks its audit table there before its driver starts
    environ = _environment("cluster", golden, runs["cluster"].dsn, tmp_path)
    environ |= {"AWS_ACCESS_KEY_ID": "lakehouse-wrong", "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    result = subprocess.run(
        [str(BIN / "lakehouse"), "stream", "--available-now", "--event-type", "orders"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert result.returncode == 2, output[-3000:]
    assert len(errors) == 1, output[-3000:]
    assert "refused the job's credentials" in errors[0] and "AWS_ACCESS_KEY_ID" in errors[0]
    assert "not-the-secret" not in output


def _snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every mart's serving table, all columns, sorted; and what serving.freshness says was loaded."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(dsn) as conn:
        for spec in load_marts(ROOT / "config").values():
            rows = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier("serving", spec.serving_table)))
            tables[spec.serving_table] = sorted(rows.fetchall(), key=lambda row: tuple(map(repr, row)))
        tables["freshness"] = conn.execute(
            "SELECT mart, interval_start, interval_end, rows FROM serving.freshness ORDER BY 1, 2, 3"
        ).fetchall()
    return tables


def _airflow(stack: Any, *args: str) -> subprocess.CompletedProcess[str]:
    from lakehouse.scripts.airflow_stack import airflow_argv

    return subprocess.run(airflow_argv(*args), env=stack.env(), capture_output=True, text=True, check=False)


def _backfill(stack: Any, metadata_dsn: str, day: date) -> list[tuple[date, date, str]]:
    """Create the backfill of ``day`` (reprocessing a completed day) and wait until its runs finish; returns each
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
        f"--from-date={day.isoformat()}",
        f"--to-date={day.isoformat()}",
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
            if runs and all(state in ("success", "failed") for *_, state in runs):
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


@dataclass(frozen=True)
class Backfill:
    """The local environment's serving tables before and after the backfill of its day, and what it reported."""

    daily: dict[str, list[tuple[Any, ...]]]
    backfilled: dict[str, list[tuple[Any, ...]]]
    runs: list[tuple[date, date, str]]
    reloaded: set[tuple[str, date]]
    health: dict[str, str | None]


@pytest.fixture(scope="module")
def backfill(runs: dict[str, EnvironmentRun]) -> Backfill:
    """``airflow backfill create`` over the local environment's day, run by the stack's scheduler, with the same
    environment as its daily run (Gold tasks are Spark Connect clients)."""
    from lakehouse.scripts.airflow_stack import AirflowStack

    local = runs["local"]
    daily = _snapshot(local.dsn)
    with psycopg.connect(local.dsn) as conn:
        started = conn.execute("SELECT now()").fetchone()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in local.environ.items():
            if os.environ.get(key) != value:
                patch.setenv(key, value)
        patch.setenv("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE", "False")  # backfill runs only, no scheduled run
        settings.cache_clear()
        stack = AirflowStack(settings())
        stack.start()
        try:
            backfill_runs = _backfill(stack, settings().postgres_dsn(settings().airflow.metadata_database), DAY)
            health = stack.health()
        finally:
            stack.stop()
    settings.cache_clear()
    with psycopg.connect(local.dsn) as conn:
        reloaded = conn.execute(
            "SELECT mart, interval_start FROM serving.freshness WHERE loaded_at > %s", started
        ).fetchall()
    return Backfill(daily, _snapshot(local.dsn), backfill_runs, set(reloaded), health)


def test_backfill_of_the_day_leaves_every_serving_table_as_the_daily_run_did(backfill: Backfill) -> None:
    assert backfill.runs == [(DAY, DAY + timedelta(days=1), "success")]
    assert backfill.reloaded >= {(mart, DAY) for mart in load_marts(ROOT / "config")}, "every mart is reloaded"
    assert backfill.backfilled == backfill.daily
    # what the UI's home page shows: every component of the local stack, the triggerer included, heartbeating
    assert "triggerer" in backfill.health and backfill.health == dict.fromkeys(backfill.health, "healthy")


def _log_files(roots: list[Path]) -> list[Path]:
    """Every log file under ``roots``: ``*.log``, ``*.out``, ``*.err``, executors' ``stdout``/``stderr`` and whatever is
    in a ``logs`` folder (Airflow's task logs)."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            named = path.suffix in (".log", ".out", ".err") or path.name in ("stdout", "stderr") or "logs" in path.parts
            if named and path.is_file():
                found.append(path)
    return found


def test_no_log_holds_a_secret(
    runs: dict[str, EnvironmentRun], backfill: Backfill, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """After both environments' streams, DAG runs and loads and the scheduler's backfill: neither the serving DSN's
    password nor the Airflow API's JWT secret is in any log the suite's processes wrote."""
    from lakehouse.scripts.airflow_stack import airflow_env

    assert FAKE_PG_PASSWORD in runs["local"].environ["AIRFLOW_CONN_LAKEHOUSE_POSTGRES"]
    secrets = (FAKE_PG_PASSWORD, airflow_env(settings())["AIRFLOW__API_AUTH__JWT_SECRET"])
    files = _log_files([tmp_path_factory.getbasetemp(), settings().home])
    names = {path.name for path in files}
    assert {"stream.log", "gold_marts.log"} <= names, "the environments' logs should be among those read"
    assert any("airflow" in path.parts and "logs" in path.parts for path in files), "and the backfill's task logs"
    hits = sorted({str(path) for path in files for secret in secrets if secret in path.read_text(errors="replace")})
    assert not hits, f"a secret is in {len(hits)} log file(s): {hits[:10]}"
