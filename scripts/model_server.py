"""The local stack's REST endpoint for the sentiment model (``lakehouse stack up model-server``): uvicorn running
``lakehouse.ml.serving`` from the project's venv, on the address of ``model_serving.url``."""

from __future__ import annotations

import logging
import os
import sys

from lakehouse.config.settings import Settings
from lakehouse.scripts.process import Service, answers, port_open, require_free_port, wait_until

log = logging.getLogger(__name__)
APP = "lakehouse.ml.serving:create_app"


class ModelServer:
    """uvicorn with one worker (the model predicts on one thread; a 2-core machine has no core to spare), uvloop and
    httptools, no access log. Part of the stack where ``model_serving.url`` names this machine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service = Service("model-server", settings.home / "run")
        serving = settings.model_serving
        self.configured = serving is not None and serving.on_this_machine
        address: tuple[str, int] = serving.address if serving is not None else ("127.0.0.1", 0)
        self.host, self.port = address
        self.url = serving.url.rstrip("/") if serving is not None else ""

    def argv(self) -> list[str]:
        """The server's command line."""
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            APP,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
        ]

    def env(self) -> dict[str, str]:
        """This process's environment, the settings' home and the MLflow client's: the server reads the same
        environment file (``LAKEHOUSE_ENV``) and asks the tracking server briefly (a registry that does not answer
        is asked again at the next reload, not retried for minutes)."""
        return {
            **os.environ,
            "LAKEHOUSE_ENV": self.settings.name,
            "LAKEHOUSE_HOME": str(self.settings.home),
            **self.settings.mlflow.client_env(),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"),
        }

    def running(self) -> bool:
        """True when our server process is alive and its port answers."""
        return self.service.pid() is not None and port_open(self.port, self.host)

    def start(self) -> None:
        """Start the server unless it runs already; wait until it answers. It starts without a champion too
        (``/health`` answers 503 until the alias names a version), so readiness is its OpenAPI document."""
        if not self.configured or self.running():
            return
        require_free_port(self.port, "the model server", "LAKEHOUSE_MODEL_SERVER_PORT")
        mlflow = self.settings.mlflow
        log.info("starting the model server on %s (%s@%s)", self.url, mlflow.model_name, mlflow.champion_alias)
        self.service.start(self.argv(), env=self.env(), cwd=self.settings.home)
        wait_until(self._answers, 120, f"the model server on {self.url}", self.service.log_file)
        log.info("model server up on %s (docs: %s/docs)", self.url, self.url)

    def _answers(self) -> bool:
        return answers(f"{self.url}/openapi.json", self.service, "the model server")

    def stop(self) -> None:
        """Stop the server."""
        self.service.stop(timeout=15)
