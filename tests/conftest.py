"""Shared fixtures. The suite runs its own local stack on ports of its own, with state in .lakehouse/test,
so it never touches a stack started by `make demo`. Nothing is mocked: fixtures start the real services."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lakehouse.scripts.superset_api import SupersetApi
    from lakehouse.scripts.superset_server import SupersetServer

ROOT = Path(__file__).resolve().parents[1]
# `make test` runs the suite in two pytest-xdist workers (-n 2): each is a suite of its own, with its own stack on
# ports of its own (gw1's are 1000 higher) and its own state folder; outside xdist this is the worker "gw0"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
WORKER_INDEX = int(WORKER.removeprefix("gw") or 0)
# LAKEHOUSE_TEST_PORT_OFFSET moves every port of the suite's stacks, so that two checkouts can run their suites at once
PORT_OFFSET = int(os.environ.get("LAKEHOUSE_TEST_PORT_OFFSET", "0")) + 1000 * WORKER_INDEX


def suite_port(port: int) -> str:
    """A port of the suite's stacks (moved by ``LAKEHOUSE_TEST_PORT_OFFSET``)."""
    return str(port + PORT_OFFSET)


TEST_ENV = {
    "LAKEHOUSE_ENV": "local",
    "LAKEHOUSE_HOME": str(ROOT / ".lakehouse" / ("test" if WORKER_INDEX == 0 else f"test-{WORKER}")),
    "LAKEHOUSE_KAFKA_PORT": suite_port(29092),
    "LAKEHOUSE_KAFKA_CONTROLLER_PORT": suite_port(29093),
    "LAKEHOUSE_KAFKA_SECURE_PORT": suite_port(29094),
    "LAKEHOUSE_PG_PORT": suite_port(25433),
    "LAKEHOUSE_AIRFLOW_PORT": suite_port(28080),
    "LAKEHOUSE_SPARK_MASTER": "local[2]",
    "LAKEHOUSE_SPARK_CONNECT_PORT": suite_port(25002),
    "LAKEHOUSE_MLFLOW_PORT": suite_port(25050),
    "LAKEHOUSE_MODEL_SERVER_PORT": suite_port(25051),
    "LAKEHOUSE_SUPERSET_PORT": suite_port(28088),
    # this process hosts the suite's own driver (the `spark` fixture), and a process is either a Spark Connect
    # client or a classic driver: tests that run jobs over Spark Connect do it in Airflow's task processes
    "LAKEHOUSE_SPARK_DEPLOY": "spark-submit",
    # the suite's PostgreSQL is thrown away after the run: fsync, synchronous_commit and full_page_writes off
    "LAKEHOUSE_PG_DURABILITY": "fast-tests-only",
}
for _key, _value in TEST_ENV.items():
    os.environ[_key] = _value
# Every JVM of the suite (Kafka, Spark drivers, executors and servers, the object store) compiles with C1 only: they
# live minutes on tiny data, and on two cores C2's compiler threads took more CPU than the work (the golden suite:
# 1,045 s with the default JIT, 914 s with C1 only, side by side; docs/timings.md, "The test suite").
# LAKEHOUSE_TEST_FULL_JIT=1 keeps the JVM's default tiered compilation. C1 alone gets the 48 MB code cache of a
# JVM without tiers: a streaming driver filled it ("CodeCache is full. Compiler has been disabled", then an
# InternalError in a batch), so it keeps the 240 MB of the default.
_JAVA_OPTIONS = os.environ.get("JAVA_TOOL_OPTIONS", "")
if os.environ.get("LAKEHOUSE_TEST_FULL_JIT") != "1" and "TieredStopAtLevel" not in _JAVA_OPTIONS:
    os.environ["JAVA_TOOL_OPTIONS"] = f"{_JAVA_OPTIONS} -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m".strip()
os.environ.pop("LAKEHOUSE_CONFIG_DIR", None)

from lakehouse.config.settings import Settings, settings  # noqa: E402
from lakehouse.scripts.airflow_stack import airflow_env  # noqa: E402

# Airflow reads its configuration when first imported: point it at the test stack before any test imports it.
os.environ.update(airflow_env(settings()))


def _xdist_group(module: str) -> str:
    """The tests that go to one xdist worker together: a module (its module-scoped fixtures run once), or a family
    of modules sharing a server that is costly to start (Superset; the MLflow tracking server)."""
    name = Path(module).stem
    if "superset" in name:
        return "superset"
    if name in ("test_mlflow_server", "test_ml_training", "test_model_serving", "test_stream_scoring"):
        return "mlflow"
    return module


# the groups that take longest (pytest --durations, 2026-12-04), started first so that neither worker is left with a
# long one at the end; the other groups follow in collection order
SLOW_GROUPS = (
    "tests/e2e/test_golden_data.py",
    "tests/integration/test_chaos.py",
    "tests/integration/test_streaming_guarantees.py",
    "tests/integration/test_gold_marts_load.py",
    "superset",
    "mlflow",
    "tests/unit/test_delta_io.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow groups first (``SLOW_GROUPS``), each group's tests together and in their order."""
    rank = {group: i for i, group in enumerate(SLOW_GROUPS)}
    items.sort(key=lambda item: rank.get(_xdist_group(str(Path(str(item.path)).relative_to(ROOT))), len(rank)))


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``make test``'s scheduler (``-n 2``): each group of ``_xdist_group`` runs whole on one worker, the groups in
    collection order (not by their number of tests, xdist's default). (``--dist loadgroup`` would take groups from
    marks, but pytest-xdist 3.8 cannot rename pytest 9's node ids, so its groups are lost.)"""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _xdist_group(nodeid.split("::", 1)[0])

    return ByGroup(config, log)


@pytest.fixture(scope="session")
def lakehouse_settings() -> Settings:
    """Settings of the test environment."""
    return settings()


_STARTED_HERE: set[str] = set()


def _start(settings: Settings, component: str) -> None:
    """Start one stack component; remember it if this session started it (only those are stopped at the end)."""
    from lakehouse.scripts.stack import LocalStack

    stack = LocalStack(settings)
    before = {s.name: s.up for s in stack.status()}
    stack.up((component,))
    if not before.get(component):
        _STARTED_HERE.add(component)


@pytest.fixture(scope="session")
def kafka_stack(lakehouse_settings: Settings) -> Iterator[Settings]:
    """A real Kafka broker (KRaft) for the session."""
    _start(lakehouse_settings, "kafka")
    yield lakehouse_settings


@pytest.fixture(scope="session")
def spark_connect(lakehouse_settings: Settings) -> Iterator[Settings]:
    """The stack's Spark Connect server (what Gold tasks use with ``spark.deploy: connect``)."""
    _start(lakehouse_settings, "spark")
    yield lakehouse_settings


@pytest.fixture(scope="session")
def postgres_stack(lakehouse_settings: Settings) -> Iterator[Settings]:
    """A real PostgreSQL (embedded, or LAKEHOUSE_PG_DSN) with the serving schema migrated."""
    from lakehouse.postgres.migrate import migrate

    _start(lakehouse_settings, "postgres")
    if lakehouse_settings.uses_embedded_postgres:
        _drop_leftover_databases(lakehouse_settings.postgres_dsn("postgres"))
    migrate(lakehouse_settings.postgres_dsn())
    yield lakehouse_settings


# the databases tests make for themselves (isolated_serving; the golden-data suite's), by name
_TEST_DATABASES = r"^(lakehouse|golden_local|golden_cluster)_[0-9a-f]{8}$"


def _drop_leftover_databases(admin: str) -> None:
    """Drop the test databases a session killed before its teardown left in the suite's embedded PostgreSQL: a test
    that lists every database (the BI role's reach) would find them."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin, autocommit=True) as conn:
        leftovers = conn.execute("SELECT datname FROM pg_database WHERE datname ~ %s", (_TEST_DATABASES,)).fetchall()
        for (name,) in leftovers:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def mlflow_stack(postgres_stack: Settings) -> Iterator[Settings]:
    """The stack's MLflow tracking server and model registry (backend in the test PostgreSQL)."""
    _start(postgres_stack, "mlflow")
    yield postgres_stack


@pytest.fixture(scope="session")
def superset_stack(postgres_stack: Settings) -> Iterator[Settings]:
    """The stack's Apache Superset (metadata in the test PostgreSQL, its read-only connection to serving)."""
    _start(postgres_stack, "superset")
    yield postgres_stack


@pytest.fixture(scope="module")
def superset_server(superset_stack: Settings) -> SupersetServer:
    """The stack's Superset (started, so its dashboards are imported)."""
    from lakehouse.scripts.superset_server import SupersetServer

    return SupersetServer(superset_stack)


@pytest.fixture(scope="module")
def superset_api(superset_server: SupersetServer) -> SupersetApi:
    """Superset's REST API, logged in as the generated admin (``/api/v1/security/login``)."""
    return superset_server.admin_api()


@pytest.fixture(scope="session")
def airflow_db(postgres_stack: Settings) -> Settings:
    """Airflow's metadata schema, migrated, in the test PostgreSQL (no api-server or scheduler needed)."""
    from lakehouse.scripts.airflow_stack import AirflowStack
    from lakehouse.scripts.postgres_server import ensure_database

    ensure_database(postgres_stack.postgres_dsn("postgres"), postgres_stack.airflow.metadata_database)
    AirflowStack(postgres_stack).migrate()
    return postgres_stack


@pytest.fixture(scope="session")
def spark(lakehouse_settings: Settings):  # type: ignore[no-untyped-def]
    """One local SparkSession with Delta for the whole suite (local[2], 2 shuffle partitions, UI off)."""
    import logging

    from lakehouse.scripts.stack import driver_class_archive
    from lakehouse.spark.session import get_spark

    # as every job does (lakehouse.spark.jobs.common.run_job): py4j's INFO lines would otherwise be written at
    # interpreter exit, when its connections are garbage-collected, to streams pytest has already closed
    logging.getLogger("py4j").setLevel(logging.WARNING)
    driver_class_archive(lakehouse_settings)  # built by `make setup` already, unless pytest runs on its own
    session = get_spark("lakehouse-tests", {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"})
    yield session
    session.stop()


@pytest.fixture
def without_javac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with a JRE only: no ``javac`` on PATH, and an empty jar cache (nothing this project compiles)."""
    monkeypatch.setenv("LAKEHOUSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-jdk"))


@pytest.fixture
def isolated_lake(tmp_path: Path, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A private copy of config/ (topics renamed ``<name>_<unique>``) and a private lake and checkpoints, on the
    shared test stack. Child processes (spark-submit) see the same through the environment."""
    import shutil

    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for path in (config / "event_types").glob("*.yaml"):
        path.write_text(path.read_text().replace(f"topic: {path.stem}\n", f"topic: {path.stem}_{unique}\n"))
    monkeypatch.setenv("LAKEHOUSE_CONFIG_DIR", str(config))
    monkeypatch.setenv("LAKEHOUSE_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LAKEHOUSE_CHECKPOINT_ROOT", str(tmp_path / "checkpoints"))
    settings.cache_clear()
    yield settings()
    settings.cache_clear()


@pytest.fixture
def isolated_serving(
    postgres_stack: Settings, isolated_lake: Settings, unique: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """isolated_lake plus a serving database of its own (migrated), used by the code and by Airflow tasks."""
    import psycopg

    from lakehouse.postgres.migrate import migrate
    from lakehouse.scripts.postgres_server import ensure_database

    database = f"lakehouse_{unique}"
    admin = postgres_stack.postgres_dsn("postgres")
    ensure_database(admin, database)
    dsn = postgres_stack.postgres_dsn(database)
    migrate(dsn)
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", dsn)
    monkeypatch.setenv("AIRFLOW_CONN_LAKEHOUSE_POSTGRES", dsn)
    settings.cache_clear()
    yield settings()
    settings.cache_clear()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topics, tables and folders of one test."""
    return uuid.uuid4().hex[:8]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop what this session started, unless LAKEHOUSE_KEEP_TEST_STACK=1 (handy when iterating)."""
    _close_spark_connect_clients()
    if os.environ.get("LAKEHOUSE_KEEP_TEST_STACK") == "1" or not _STARTED_HERE:
        return
    from lakehouse.scripts.stack import LocalStack

    stack = LocalStack(settings())
    if "postgres" in _STARTED_HERE:
        _close_airflow_connections()
    if "superset" in _STARTED_HERE:
        stack.superset.stop()
    if "spark" in _STARTED_HERE:
        stack.spark.stop()
    if "model-server" in _STARTED_HERE:
        stack.model_server.stop()
    if "mlflow" in _STARTED_HERE:
        stack.mlflow.stop()
    if "kafka" in _STARTED_HERE:
        stack.kafka.stop()
    if "postgres" in _STARTED_HERE:
        stack.postgres.stop()


def _close_spark_connect_clients() -> None:
    """Close this process's Spark Connect clients. At interpreter exit an open client asks its server to free its
    ML cache; when the server is gone (stopped by this hook or a fixture), that call is retried for minutes before
    pytest can exit (``RETRIES_EXCEEDED``). A closed client skips it."""
    import gc
    import sys

    core = sys.modules.get("pyspark.sql.connect.client.core")
    if core is None:
        return
    for client in [o for o in gc.get_objects() if isinstance(o, core.SparkConnectClient)]:
        if not client.is_closed:
            client.close()


def _close_airflow_connections() -> None:
    """Close the Airflow ORM's session and pooled connections while PostgreSQL still runs.

    Airflow closes them at interpreter exit (``atexit``: ``airflow.settings.dispose_orm``), after this hook has
    stopped PostgreSQL. ``dag.test`` leaves the scoped session in an open transaction, so that late rollback met a
    closed server and printed a traceback at the end of every run that used it."""
    airflow_settings = sys.modules.get("airflow.settings")
    if airflow_settings is not None:
        airflow_settings.dispose_orm()
