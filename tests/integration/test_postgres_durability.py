"""The embedded PostgreSQL is durable unless a run asks for the test suite's fast mode by name."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from lakehouse.config.settings import Settings
from lakehouse.scripts.errors import StackError
from lakehouse.scripts.postgres_server import durability_mode

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")
DURABILITY = ("fsync", "synchronous_commit", "full_page_writes")


def _settings_of(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in DURABILITY}  # type: ignore[index]


def test_a_stack_started_without_the_variable_is_durable(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AIRFLOW"))}
    env |= {"LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_PG_PORT": str(port)}
    up = subprocess.run(
        [LAKEHOUSE, "stack", "up", "postgres"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        assert f"PostgreSQL up on 127.0.0.1:{port} (durable)" in up.stderr + up.stdout
        assert _settings_of(f"postgresql://postgres@127.0.0.1:{port}/postgres") == dict.fromkeys(DURABILITY, "on")
    finally:
        subprocess.run([LAKEHOUSE, "stack", "down"], env=env, capture_output=True, timeout=300, check=False)


def test_the_suites_stack_runs_in_the_fast_mode_it_names(postgres_stack: Settings) -> None:
    assert os.environ["LAKEHOUSE_PG_DURABILITY"] == "fast-tests-only"
    assert _settings_of(postgres_stack.postgres_dsn()) == dict.fromkeys(DURABILITY, "off")


def test_an_unknown_mode_names_the_variable_and_the_modes() -> None:
    with pytest.raises(StackError, match=r"LAKEHOUSE_PG_DURABILITY='off' is not a mode: use 'durable' or"):
        durability_mode({"LAKEHOUSE_PG_DURABILITY": "off"})
    assert durability_mode({}) == "durable"
