"""The local stack's MLflow tracking server and model registry, run from a virtualenv of its own.

The server package (``mlflow``) pins ``pyarrow<26``; this project's venv has pyarrow 26 (pyspark, pgpq, the
Databricks provider), so the server runs from a virtualenv built from ``scripts/requirements/mlflow-server.txt``
(every package pinned, frozen from a clean venv; built once into the machine's cache, see
``lakehouse.scripts.server_venv``) and the project's venv holds only the client, ``mlflow-skinny``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lakehouse.config.settings import Settings, mask
from lakehouse.scripts.process import Service, answers, port_open, require_free_port, wait_until
from lakehouse.scripts.server_venv import ServerVenv

log = logging.getLogger(__name__)
REQUIREMENTS = Path(__file__).resolve().parent / "requirements" / "mlflow-server.txt"


def mlflow_venv(requirements: Path = REQUIREMENTS) -> ServerVenv:
    """The tracking server's virtualenv: ``requirements`` installed into a Python like this one's."""
    return ServerVenv("mlflow-server", requirements, "mlflow", "the MLflow server")


class MlflowServer:
    """``mlflow server`` on the port of ``mlflow.tracking_uri``: runs and the model registry in the database
    ``mlflow.backend_database`` of the stack's PostgreSQL, artifacts in ``mlflow.artifacts_destination``, served
    through the server (``--serve-artifacts``). Part of the stack only where the tracking URI names this machine."""

    def __init__(self, settings: Settings, venv: ServerVenv | None = None) -> None:
        self.settings = settings
        self.venv = venv or mlflow_venv()
        self.service = Service("mlflow", settings.home / "run")
        address = settings.mlflow.server_address
        self.configured = settings.mlflow.server_on_this_machine
        self.host, self.port = address if address is not None else ("127.0.0.1", 0)

    @property
    def address(self) -> str:
        """The tracking URI clients use."""
        return self.settings.mlflow.tracking_uri

    @property
    def backend_store_uri(self) -> str:
        """SQLAlchemy URL of the backend database (psycopg2, installed in the server's virtualenv)."""
        dsn = self.settings.postgres_dsn(self.settings.mlflow.backend_database)
        return dsn.replace("postgresql://", "postgresql+psycopg2://", 1)

    def argv(self) -> list[str]:
        """The server's command line (the backend store's URL, which may hold a password, goes in its environment)."""
        return [
            str(self.venv.bin()),
            "server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--serve-artifacts",
            "--artifacts-destination",
            self.settings.mlflow.artifacts_destination,
            # one web worker: a tracking server for a 2-core machine
            "--workers",
            "1",
        ]

    def env(self) -> dict[str, str]:
        """This process's environment plus the backend store's URL; no job runner (a huey consumer for MLflow's
        GenAI jobs, which this stack does not use)."""
        return {
            **os.environ,
            "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }

    def running(self) -> bool:
        """True when our server process is alive and its port answers."""
        return self.service.pid() is not None and port_open(self.port)

    def start(self) -> None:
        """Start the server unless it runs already (the backend database must exist); wait until it answers."""
        if not self.configured or self.running():
            return
        self.venv.ensure()
        require_free_port(self.port, "the MLflow tracking server", "LAKEHOUSE_MLFLOW_PORT")
        Path(self.settings.mlflow.artifacts_destination).mkdir(parents=True, exist_ok=True)
        log.info("starting the MLflow server on %s (backend %s)", self.address, mask(self.backend_store_uri))
        self.service.start(self.argv(), env=self.env(), cwd=self.settings.home)
        wait_until(self._healthy, 180, f"the MLflow tracking server on {self.address}", self.service.log_file)
        log.info("MLflow tracking server up on %s", self.address)

    def _healthy(self) -> bool:
        return answers(f"{self.address}/health", self.service, "the MLflow tracking server")

    def stop(self) -> None:
        """Stop the server and its workers (runs, models and artifacts stay)."""
        self.service.stop(timeout=30)
