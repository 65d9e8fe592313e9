"""The local stack's MLflow tracking server and model registry, run from a virtualenv of its own.

The server package (``mlflow``) pins ``pyarrow<26``; this project's venv has pyarrow 26 (pyspark, pgpq, the
Databricks provider), so the server runs from a virtualenv built from ``scripts/requirements/mlflow-server.txt``
(every package pinned, frozen from a clean venv) and the project's venv holds only the client, ``mlflow-skinny``.
Like the JVM jars, that virtualenv is built once into the cache shared by every checkout on this machine
(``$LAKEHOUSE_CACHE/venvs/mlflow-server-<hash of the pins and the Python>``): ``lakehouse setup`` builds it, a
change of pins builds a new one, and nothing else does.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config.settings import Settings, mask
from lakehouse.scripts.errors import PrerequisiteError, StackError
from lakehouse.scripts.process import Service, port_open, require_free_port, wait_until
from lakehouse.spark.jars import cache_root

log = logging.getLogger(__name__)
REQUIREMENTS = Path(__file__).resolve().parent / "requirements" / "mlflow-server.txt"
PIP = "pip==26.3"
_UNREACHABLE = ("Could not find a version", "No matching distribution", "ConnectionError", "Max retries exceeded")


@dataclass(frozen=True)
class ServerVenv:
    """The tracking server's virtualenv: ``requirements`` installed into a Python like this one's."""

    requirements: Path = REQUIREMENTS

    @property
    def folder(self) -> Path:
        """Cache folder of the virtualenv, keyed by its pins and by the Python it is built on."""
        key = self.requirements.read_bytes() + f"{sys.version_info[:2]}{sys.base_prefix}".encode()
        return cache_root() / "venvs" / f"mlflow-server-{hashlib.sha256(key).hexdigest()[:12]}"

    @property
    def mlflow(self) -> Path:
        """The ``mlflow`` command of the virtualenv."""
        return self.folder / "bin" / "mlflow"

    @property
    def is_ready(self) -> bool:
        """True when the virtualenv was built completely."""
        return (self.folder / ".complete").is_file() and self.mlflow.is_file()

    def ensure(self) -> Path:
        """Build the virtualenv unless it is ready (idempotent; a second process waits for the first)."""
        if self.is_ready:
            return self.folder
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with (self.folder.parent / f"{self.folder.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.is_ready:
                self._build()
        return self.folder

    def _build(self) -> None:
        # a virtualenv cannot be moved once built (its scripts name its path): a half-built one is removed instead
        shutil.rmtree(self.folder, ignore_errors=True)
        log.info("building the MLflow server's virtualenv from %s into %s", self.requirements, self.folder)
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(self.folder)], capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise PrerequisiteError(
                f"`{sys.executable} -m venv` failed, so the MLflow server has no virtualenv: install Python's "
                f"venv module (Debian: `apt-get install python3-venv`), then run `make setup` again "
                f"({_last_line(made.stderr)})"
            )
        python = str(self.folder / "bin" / "python")
        for args in (["--upgrade", PIP], ["-r", str(self.requirements)]):
            result = subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                shutil.rmtree(self.folder, ignore_errors=True)
                output = result.stdout + result.stderr
                last = _last_line(output)
                if any(sign in output for sign in _UNREACHABLE):
                    raise PrerequisiteError(
                        "pip could not reach its package index while building the MLflow server's virtualenv: "
                        f"check the network, proxy or pip's index settings, then run `make setup` again ({last})"
                    )
                raise PrerequisiteError(
                    f"pip failed to build the MLflow server's virtualenv from {self.requirements}: {last}"
                )
        (self.folder / ".complete").write_text(self.requirements.read_text())


class MlflowServer:
    """``mlflow server`` on the port of ``mlflow.tracking_uri``: runs and the model registry in the database
    ``mlflow.backend_database`` of the stack's PostgreSQL, artifacts in ``mlflow.artifacts_destination``, served
    through the server (``--serve-artifacts``). Part of the stack only where the tracking URI names this machine."""

    def __init__(self, settings: Settings, venv: ServerVenv | None = None) -> None:
        self.settings = settings
        self.venv = venv or ServerVenv()
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
            str(self.venv.mlflow),
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
        if self.service.pid() is None:
            raise StackError(f"the MLflow tracking server exited during start-up; see {self.service.log_file}")
        try:
            with urllib.request.urlopen(f"{self.address}/health", timeout=3) as response:  # noqa: S310
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and its workers (runs, models and artifacts stay)."""
        self.service.stop(timeout=30)


def _last_line(output: str) -> str:
    lines = output.strip().splitlines()
    return lines[-1].strip() if lines else ""
