"""Airflow 3 for the local stack: metadata in PostgreSQL, LocalExecutor, dags/ as DAGs folder, the UI on localhost."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

from lakehouse.config.settings import Settings, project_root
from lakehouse.scripts.errors import StackError
from lakehouse.scripts.process import Service, answers, port_open, require_free_port, wait_until

log = logging.getLogger(__name__)
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# argv after ``airflow <component>``: the triggerer's trigger logs are files under BASE_LOG_FOLDER, which the
# api-server on this machine reads directly, so it needs no log server of its own (one process less, and no
# fixed port 8794 that a second local stack would contend for)
COMPONENT_ARGS = {"triggerer": ("--skip-serve-logs",)}
SERVING_CONN_ID = "lakehouse_postgres"


def dags_folder() -> Path:
    """The repository's dags/ folder (``LAKEHOUSE_DAGS_FOLDER`` overrides, e.g. for an installed wheel)."""
    override = os.environ.get("LAKEHOUSE_DAGS_FOLDER")
    if override:
        return Path(override)
    root = project_root()
    if root is None:
        raise StackError("cannot find the dags/ folder: set LAKEHOUSE_DAGS_FOLDER to the folder holding the DAG files")
    return root / "dags"


def _jwt_secret(home: Path) -> str:
    path = home / "airflow" / "jwt_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment variables that configure Airflow for this stack (no airflow.cfg edits needed)."""
    home = settings.home / "airflow"
    metadata_dsn = settings.postgres_dsn(settings.airflow.metadata_database)
    port = settings.airflow.port
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(max(2, (os.cpu_count() or 2))),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": _jwt_secret(settings.home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_dsn.replace("postgresql://", "postgresql+psycopg2://", 1),
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        f"AIRFLOW_CONN_{SERVING_CONN_ID.upper()}": settings.postgres_dsn(),
        # tasks log runs and register models where the environment says (MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI)
        **settings.mlflow.client_env(),
    }


def airflow_argv(*args: str) -> list[str]:
    """argv for the ``airflow`` CLI of this virtualenv."""
    return [str(Path(sys.executable).parent / "airflow"), *args]


class AirflowStack:
    """api-server, scheduler, dag-processor and triggerer as background processes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.airflow.port
        run_dir = settings.home / "run"
        self.services = {name: Service(f"airflow-{name}", run_dir) for name in COMPONENTS}

    @property
    def url(self) -> str:
        """Address of the Airflow UI."""
        return f"http://localhost:{self.port}"

    def env(self) -> dict[str, str]:
        """This process's environment plus the Airflow configuration."""
        return {**os.environ, **airflow_env(self.settings), "LAKEHOUSE_HOME": str(self.settings.home)}

    def migrate(self) -> None:
        """Create or upgrade the metadata schema (idempotent)."""
        result = subprocess.run(
            airflow_argv("db", "migrate"), env=self.env(), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise StackError(f"`airflow db migrate` failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")

    def running(self) -> dict[str, bool]:
        """Which components are up."""
        return {name: service.pid() is not None for name, service in self.services.items()}

    def start(self) -> None:
        """Migrate, then start each component that is not running; wait for the UI."""
        if all(self.running().values()) and port_open(self.port):
            return
        if not self.running()["api-server"]:
            require_free_port(self.port, "the Airflow api-server", "LAKEHOUSE_AIRFLOW_PORT")
        self.migrate()
        self.start_components()

    def start_components(self) -> None:
        """Start each component that is not running, without migrating first; wait for the UI."""
        for name, service in self.services.items():
            if service.pid() is None:
                service.start(airflow_argv(name, *COMPONENT_ARGS.get(name, ())), env=self.env(), cwd=self.settings.home)
        wait_until(self._healthy, 180, f"Airflow api-server on {self.url}", self.services["api-server"].log_file)
        log.info("Airflow up on %s", self.url)

    def health(self) -> dict[str, str | None]:
        """Each part's status as the api-server reports it (``/api/v2/monitor/health``): ``metadatabase``,
        ``scheduler``, ``triggerer`` and ``dag_processor``, each "healthy", "unhealthy" (no recent heartbeat), or
        None (it never ran against this metadata database)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=10) as response:  # noqa: S310
            report = json.loads(response.read())
        return {name: part.get("status") for name, part in report.items()}

    def _healthy(self) -> bool:
        return answers(f"{self.url}/api/v2/monitor/health", self.services["api-server"], "the Airflow api-server")

    def stop(self) -> None:
        """Stop every component."""
        for service in self.services.values():
            service.stop(timeout=30)
