"""The cluster environment's Spark standalone cluster on this machine: a master and its workers, started from the
pyspark distribution's own classes (``bin/spark-class``), as a Spark installation would start them."""

from __future__ import annotations

import logging
import sys

from lakehouse.config.settings import Settings
from lakehouse.scripts.errors import StackError
from lakehouse.scripts.process import JDK_FIX, Service, port_open, require_command, require_free_port, wait_until

log = logging.getLogger(__name__)

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class SparkCluster:
    """A standalone master on the port of ``spark.master`` and ``local_stack.spark_workers`` workers. It is part
    of the stack only when ``spark.master`` names a ``spark://`` master on this machine.

    Workers run their executors with this machine's environment, so executors find the object store's
    credentials and this project's Python as the driver does."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        address = settings.spark_master_address
        self.configured = settings.master_on_this_machine
        self.host, self.port = address if address is not None else ("", 0)
        self.state_dir = settings.home / "spark-cluster"
        self.master = Service("spark-master", settings.home / "run")
        self.workers = [
            Service(f"spark-worker-{n}", settings.home / "run")
            for n in range(1, settings.local_stack.spark_workers + 1)
        ]

    @property
    def address(self) -> str:
        """The master URL applications are submitted to."""
        return self.settings.spark.master

    @property
    def web_url(self) -> str:
        """The master's web UI (applications, workers, executors)."""
        return f"http://localhost:{self.settings.local_stack.spark_master_web_port}"

    def running(self) -> bool:
        """True when the master and every worker process are alive and the master's port answers."""
        alive = self.master.pid() is not None and all(w.pid() is not None for w in self.workers)
        return alive and port_open(self.port)

    def _env(self) -> dict[str, str]:
        from lakehouse.spark.submit import submit_env

        return {
            **submit_env(self.settings),
            "SPARK_DAEMON_MEMORY": "512m",
            # an application's folder on a worker (its jars and executor logs) goes an hour after it ended
            "SPARK_DAEMON_JAVA_OPTS": "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.appDataTtl=3600",
            "PYSPARK_PYTHON": sys.executable,
        }

    def start(self) -> None:
        """Start the master, then the workers; wait until every worker has registered."""
        if not self.configured or self.running():
            return
        from lakehouse.spark.distribution import spark_home

        require_command("java", JDK_FIX)
        spark_class = str(spark_home() / "bin" / "spark-class")
        env = self._env()
        web_port = self.settings.local_stack.spark_master_web_port
        if self.master.pid() is None:
            require_free_port(self.port, "the Spark master", "LAKEHOUSE_SPARK_MASTER_PORT")
            require_free_port(web_port, "the Spark master's web UI", "LAKEHOUSE_SPARK_MASTER_WEB_PORT")
            argv = [spark_class, MASTER_CLASS, "--host", self.host, "--port", str(self.port)]
            self.master.start([*argv, "--webui-port", str(web_port)], env=env)
            wait_until(self._master_ready, 90, f"the Spark master on port {self.port}", self.master.log_file)
        stack = self.settings.local_stack
        for number, worker in enumerate(self.workers, start=1):
            if worker.pid() is not None:
                continue
            work_dir = self.state_dir / f"worker-{number}"
            work_dir.mkdir(parents=True, exist_ok=True)
            argv = [spark_class, WORKER_CLASS, "--host", self.host, "--cores", str(stack.spark_worker_cores)]
            argv += ["--memory", stack.spark_worker_memory, "--webui-port", "0", "--work-dir", str(work_dir)]
            worker.start([*argv, self.address], env=env)
        wait_until(self._workers_alive, 90, f"{len(self.workers)} Spark workers", self.workers[-1].log_file)
        log.info(
            "Spark standalone cluster up: %s with %d workers (UI %s)", self.address, len(self.workers), self.web_url
        )

    def _master_ready(self) -> bool:
        if self.master.pid() is None:
            raise StackError(f"the Spark master exited during start-up; see {self.master.log_file}")
        return port_open(self.port)

    def alive_workers(self) -> int:
        """Workers the master lists as ALIVE (its web UI's JSON); 0 while the UI does not answer with it yet."""
        import json
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.web_url}/json/", timeout=3) as response:  # noqa: S310 (local UI)
                state = json.load(response)
        except (OSError, ValueError):  # a UI still starting may answer with an empty or partial body
            return 0
        return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")

    def _workers_alive(self) -> bool:
        for worker in self.workers:
            if worker.pid() is None:
                raise StackError(f"Spark {worker.name} exited during start-up; see {worker.log_file}")
        return self.alive_workers() >= len(self.workers)

    def stop(self) -> None:
        """Stop the workers (and their executors), then the master."""
        for worker in self.workers:
            worker.stop(timeout=20)
        self.master.stop(timeout=20)
