"""A missing prerequisite stops the CLI with exit code 2 and one clear line that names the fix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.config.settings import Settings
from lakehouse.scripts.kafka_broker import KafkaBroker, new_cluster_id
from tests.conftest import suite_port

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LAKEHOUSE, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[0]


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AIRFLOW"))}
    env.update({"LAKEHOUSE_HOME": str(tmp_path / "home"), "COLUMNS": "200"})
    return env


def test_port_in_use_names_the_port_and_the_variable(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {**_base_env(tmp_path), "LAKEHOUSE_KAFKA_PORT": str(port)}
        line = _error_line(_run(["stack", "up", "kafka"], env))
    assert f"port {port}" in line and "LAKEHOUSE_KAFKA_PORT" in line


def test_missing_java_names_the_fix(tmp_path: Path) -> None:
    env = {
        **_base_env(tmp_path),
        "PATH": str(Path(sys.executable).parent),
        "LAKEHOUSE_KAFKA_PORT": suite_port(29992),
        "LAKEHOUSE_KAFKA_CONTROLLER_PORT": suite_port(29993),
    }
    line = _error_line(_run(["stack", "up", "kafka"], env))
    assert "java" in line and "install" in line


def test_unreachable_maven_repository_names_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "user"
    (home / ".m2").mkdir(parents=True)
    (home / ".m2" / "settings.xml").write_text(
        "<settings><localRepository>" + str(tmp_path / "m2repo") + "</localRepository><mirrors><mirror>"
        "<id>nowhere</id><mirrorOf>*</mirrorOf><url>https://127.0.0.1:9/maven2</url></mirror></mirrors></settings>"
    )
    env = {
        **_base_env(tmp_path),
        "HOME": str(home),
        "MAVEN_OPTS": f"-Duser.home={home}",
        "LAKEHOUSE_CACHE": str(tmp_path / "cache"),
    }
    line = _error_line(_run(["setup"], env))
    assert "Maven could not reach its repository" in line and "settings.xml" in line


def test_bad_configuration_lists_every_problem(tmp_path: Path) -> None:
    env = {**_base_env(tmp_path), "LAKEHOUSE_ENV": "databricks"}
    result = _run(["stack", "status"], env)
    assert result.returncode == 2
    assert "EVENTHUBS_NAMESPACE" in result.stderr and "LAKEHOUSE_PG_DSN" in result.stderr
    assert "Traceback" not in result.stderr


def test_gold_without_a_spark_connect_server_names_the_fix(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    env = {**_base_env(tmp_path), "LAKEHOUSE_SPARK_DEPLOY": "connect", "LAKEHOUSE_SPARK_CONNECT_PORT": str(free_port)}
    line = _error_line(_run(["gold", "fct_orders_daily", "--start", "2026-01-01", "--end", "2026-01-02"], env))
    assert f"sc://localhost:{free_port}" in line
    assert "lakehouse stack up spark" in line and "LAKEHOUSE_SPARK_DEPLOY=spark-submit" in line


def test_kafka_storage_formats_with_a_cluster_id_that_starts_with_a_dash(lakehouse_settings: Settings) -> None:
    """One random id in 64 starts with "-"; Kafka's argument parser must not read it as an option."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=lakehouse_settings.home.parent) as home:
        broker = KafkaBroker(lakehouse_settings.model_copy(update={"home": Path(home)}))
        broker.state_dir.mkdir(parents=True)
        dash_id = "-" + new_cluster_id()[1:]
        broker._format_storage(broker._properties(), dash_id)
        meta = (broker.state_dir / "data" / "meta.properties").read_text()
    assert f"cluster.id={dash_id}" in meta


def test_unreachable_spark_master_names_the_setting(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    env = {**_base_env(tmp_path), "LAKEHOUSE_ENV": "cluster", "LAKEHOUSE_SPARK_MASTER": f"spark://127.0.0.1:{port}"}
    line = _error_line(_run(["stream", "--available-now"], env))
    assert f"spark://127.0.0.1:{port}" in line and "LAKEHOUSE_SPARK_MASTER" in line
