"""The local stack's Spark Connect server: one long-running Spark driver (``local[*]``, Delta, the Kafka
connector) that Gold jobs connect to, so an Airflow task starts in about a second instead of starting a JVM."""

from __future__ import annotations

import logging

from lakehouse.config.settings import Settings
from lakehouse.scripts.process import Service, port_open, require_free_port, wait_until

log = logging.getLogger(__name__)
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


class SparkConnectServer:
    """``spark-submit --class SparkConnectServer`` with the environment's Spark settings, on ``connect_url``'s
    port; its Python workers (``mapInArrow`` in the loader) run on this project's interpreter."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # one server per environment: the cluster environment's runs against its cluster, beside the local one
        name = "spark-connect" if settings.name == "local" else f"spark-connect-{settings.name}"
        self.service = Service(name, settings.home / "run")
        self.port = settings.spark.connect_port

    @property
    def address(self) -> str:
        """The URL clients connect to."""
        return self.settings.spark.connect_url or f"sc://localhost:{self.port}"

    def running(self) -> bool:
        """True when our server process is alive and its port answers."""
        return self.service.pid() is not None and port_open(self.port)

    def start(self) -> None:
        """Start the server unless it runs already; wait until it accepts clients."""
        from lakehouse.spark.submit import submit_base, submit_env

        if self.running():
            return
        require_free_port(self.port, "the Spark Connect server", "LAKEHOUSE_SPARK_CONNECT_PORT")
        argv = [
            *submit_base(self.settings, "lakehouse-spark-connect"),
            "--conf",
            f"spark.connect.grpc.binding.port={self.port}",
            "--class",
            SERVER_CLASS,
            "spark-internal",
        ]
        self.service.start(argv, env=submit_env(self.settings))
        wait_until(self._ready, 180, f"Spark Connect server on port {self.port}", self.service.log_file)
        log.info("Spark Connect server up on %s", self.address)

    def _ready(self) -> bool:
        from lakehouse.scripts.errors import StackError

        if self.service.pid() is None:
            raise StackError(f"the Spark Connect server exited during start-up; see {self.service.log_file}")
        return port_open(self.port)

    def stop(self) -> None:
        """Stop the server (running sessions end with it)."""
        self.service.stop(timeout=30)
