"""Run a job module the way the environment deploys Spark (``spark.deploy``): with ``spark-submit`` against
the environment's master (``local[*]`` on a laptop, ``spark://``/``yarn``/``k8s://`` on a cluster), as a Spark
Connect client of a long-running server, or in this process. The command line comes from config only."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from lakehouse.config.settings import Settings
from lakehouse.spark.class_archive import DRIVER_OPTIONS
from lakehouse.spark.distribution import spark_home
from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.session import OWN_DRIVER_ENV, session_conf

log = logging.getLogger(__name__)
LOG4J2_CONFIG = Path(__file__).resolve().parent / "log4j2.properties"


def submit_base(settings: Settings, name: str, extra_conf: Mapping[str, str] | None = None) -> list[str]:
    """spark-submit with the environment's master, jars and properties (and ``extra_conf``), up to the application
    to run."""
    if settings.spark.master == "databricks":
        raise SparkJobError(
            "the databricks environment runs jobs on the workspace, not from here: the gold_marts DAG submits them "
            "as Databricks runs, or run `lakehouse-job <job> …` on a cluster (docs/deploy.md); or LAKEHOUSE_ENV=local"
        )
    conf = session_conf(settings, extra_conf)
    jars = conf.pop("spark.jars", "")
    argv = [str(spark_home() / "bin" / "spark-submit"), "--master", settings.spark.master, "--name", name]
    driver_options = conf.pop(DRIVER_OPTIONS, "")
    if "log4j2.configurationFile" not in driver_options:  # an environment may name a log4j config of its own
        driver_options = f"-Dlog4j2.configurationFile=file:{LOG4J2_CONFIG} {driver_options}".strip()
    if driver_options:
        argv += ["--driver-java-options", driver_options]
    if jars:
        argv += ["--jars", jars]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return argv


def submit_command(settings: Settings, module: str, args: list[str]) -> list[str]:
    """The spark-submit argv for running ``module`` (a lakehouse.spark.jobs module) with ``args``."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SparkJobError(f"no job module {module!r}: expected one of lakehouse.spark.jobs.*")
    return [*submit_base(settings, module), spec.origin, *args]


def submit_env(settings: Settings) -> dict[str, str]:
    """Environment of a spark-submit child: this process's, with the driver and workers on this Python."""
    return {
        **os.environ,
        **settings.object_store_credentials(),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_HOME": str(spark_home()),
        "LAKEHOUSE_HOME": str(settings.home),
        "LAKEHOUSE_ENV": settings.name,
        OWN_DRIVER_ENV: "1",
    }


def job_exit_code(settings: Settings, module: str, args: list[str], *, streaming: bool = False) -> int:
    """Run the job (see ``run_job``) and return the exit code of a spark-submit run (0, or 2 for bad data, input
    or config); a job run in this process raises LakehouseError for those instead."""
    try:
        run_job(settings, module, args, streaming=streaming)
    except SparkSubmitError as exc:
        return exc.exit_code
    return 0


class SparkSubmitError(SparkJobError):
    """A spark-submit run exited non-zero; ``user_error`` is True for exit code 2 (bad input, config or data:
    retrying will not help)."""

    def __init__(self, module: str, args: list[str], exit_code: int, tail: list[str]) -> None:
        self.exit_code = exit_code
        self.user_error = exit_code == 2
        self.tail = tail
        reason = next((line for line in reversed(tail) if " ERROR " in line or "error" in line.lower()), "")
        super().__init__(f"{module} {' '.join(args)} exited with code {exit_code}: {reason.strip()}")


# how long a stopped job's driver may take to finish its running micro-batch before its process group is killed
STOP_GRACE_SECONDS = 180.0


def run_spark_job(settings: Settings, module: str, args: list[str]) -> None:
    """spark-submit a job, streaming its output to this process's stdout; raise SparkSubmitError on failure.

    The job runs in a process group of its own, so a Ctrl-C or a SIGTERM reaches it only through this process:
    the job's Python driver gets SIGTERM and stops between micro-batches (a batch job just ends), and the
    spark-submit JVM ends with it. A stop asked for twice, or a driver still running after STOP_GRACE_SECONDS,
    kills the group. If this process dies, the JVM is killed with it (on Linux)."""
    require_master(settings)
    argv = submit_command(settings, module, args)
    env = submit_env(settings)
    log.info("spark-submit %s %s (master %s)", module, " ".join(args), settings.spark.master)
    tail: deque[str] = deque(maxlen=60)
    with (
        subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=_killed_with_parent(),  # noqa: PLW1509 (only a prctl call, resolved before the fork)
        ) as proc,
        _sigterm_as_interrupt(),
    ):
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                tail.append(line.rstrip("\n"))
        except BaseException as stop:
            log.info("stopping %s: its driver finishes the running micro-batch first", module)
            _stop_driver(proc, argv[-1 - len(args)], tail)
            if not isinstance(stop, KeyboardInterrupt):
                raise
    if proc.returncode != 0:
        raise SparkSubmitError(module, args, proc.returncode, list(tail))


def require_master(settings: Settings) -> None:
    """Fail with one line when a ``spark://`` master does not answer (spark-submit would retry for a minute)."""
    address = settings.spark_master_address
    if address is None:
        return
    import socket

    try:
        socket.create_connection(address, timeout=5).close()
    except OSError as exc:
        raise SparkJobError(
            f"no Spark master answers at {settings.spark.master} ({exc.strerror or exc}): start it with "
            "`lakehouse stack up cluster`, or point LAKEHOUSE_SPARK_MASTER at your cluster's master"
        ) from None


def _killed_with_parent() -> Callable[[], None] | None:
    """What the spark-submit child runs before exec to be killed when the thread that started it ends (Linux's
    PR_SET_PDEATHSIG), or None elsewhere."""
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None).prctl
    return lambda: prctl(1, signal.SIGKILL)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, like Ctrl-C, unless someone (Airflow) already handles it."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop_driver(proc: subprocess.Popen[str], job_file: str, tail: deque[str]) -> None:
    """SIGTERM to the job's Python driver (a child of the spark-submit JVM), then its output until it exits; the
    whole group is killed after STOP_GRACE_SECONDS, at a second stop, or when there is no driver yet."""
    import psutil

    job = os.path.realpath(job_file)  # spark-submit starts the driver with the file's path, links resolved

    def is_driver(process: psutil.Process) -> bool:
        try:
            return any(os.path.realpath(arg) == job for arg in process.cmdline() if arg.endswith(".py"))
        except psutil.Error:  # ended meanwhile (Spark's Python workers come and go)
            return False

    try:
        drivers = [p for p in psutil.Process(proc.pid).children(recursive=True) if is_driver(p)]
    except psutil.Error:
        drivers = []
    for driver in drivers:
        driver.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + (STOP_GRACE_SECONDS if drivers else 0.0)
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            if line:
                sys.stdout.write(line)
                tail.append(line.rstrip("\n"))
            else:
                time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_job(settings: Settings, module: str, args: list[str], *, streaming: bool = False) -> None:
    """Run a job as ``spark.deploy`` says: ``spark-submit`` (SparkSubmitError on failure), or the job's ``main``
    in this process, either as a Spark Connect client (``connect``; streaming jobs are spark-submitted, they
    need a driver of their own) or hosting the driver (``in-process``). In this process, bad input or config
    raises LakehouseError and anything else propagates as it is."""
    deploy = settings.spark.deploy
    if deploy == "spark-submit" or (deploy == "connect" and streaming):
        run_spark_job(settings, module, args)
        return
    from pyspark.sql import SparkSession

    log.info("%s %s (%s)", module, " ".join(args), deploy)
    caller_session = SparkSession.getActiveSession()
    try:
        importlib.import_module(module).main(args)
    finally:
        if deploy == "connect":
            _release_connect_session(caller_session)


def _release_connect_session(caller_session: object) -> None:
    """End the Spark Connect session the job opened, freeing its state on the server (the server keeps running).
    A session the caller already had, classic or Connect, is the caller's to stop."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if (
        session is not None
        and session is not caller_session
        and type(session).__module__.startswith("pyspark.sql.connect")
    ):
        session.stop()
