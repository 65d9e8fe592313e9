"""A step that fails because a service is down is retried by Airflow and exits 1 as a job; one that fails on its
data or configuration fails for good (exit 2). Here the service is a Spark Connect server that does not answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def connect_down(tmp_path: Path) -> dict[str, str]:
    """The local environment with Gold jobs as clients of a Spark Connect server that is not there (for a job run
    in its own process: this one's Spark session and settings are left alone)."""
    return {
        "LAKEHOUSE_ENV": "local",
        "LAKEHOUSE_HOME": str(tmp_path / "home"),
        "LAKEHOUSE_SPARK_DEPLOY": "connect",
        "LAKEHOUSE_SPARK_CONNECT_PORT": str(_closed_port()),
        "LAKEHOUSE_PG_DSN": "postgresql://nobody@127.0.0.1:1/lakehouse",
    }


def test_a_job_without_spark_connect_exits_1_with_one_line(connect_down: dict[str, str]) -> None:
    argv = [sys.executable, "-m", "lakehouse.spark.jobs.gold", "build", "fct_orders_daily"]
    argv += ["--start=2025-04-14", "--end=2025-04-15"]
    result = subprocess.run(
        argv, env={**os.environ, **connect_down}, capture_output=True, text=True, timeout=300, check=False
    )
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert result.returncode == 1, output[-3000:]
    assert len(errors) == 1 and "Traceback" not in output, output[-3000:]
    assert "no Spark Connect server answers" in errors[0] and "(a retry may succeed)" in errors[0]
