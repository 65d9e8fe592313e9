"""The embedded PostgreSQL: durable unless a run asks for the test suite's fast mode by name, and a password for
every role (scram-sha-256) with no database open to PUBLIC, as on a managed server."""

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


def _refusal(dsn: str) -> str:
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(dsn, connect_timeout=10).close()
    return str(refused.value)


def _lakehouse(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LAKEHOUSE, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_new_stack_is_durable_and_asks_every_role_for_its_password(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AIRFLOW", "PG"))}
    env |= {"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_PG_PORT": str(port)}
    up = _lakehouse(env, "stack", "up", "postgres")
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        assert f"PostgreSQL up on 127.0.0.1:{port} (durable, scram-sha-256)" in up.stderr + up.stdout
        passfile = home / "postgres" / "pgpass"
        assert passfile.stat().st_mode & 0o777 == 0o600
        password = passfile.read_text().strip().split(":")[-1]
        server = f"postgresql://postgres@127.0.0.1:{port}"
        with_passfile = f"{server}/postgres?passfile={passfile}"
        assert _settings_of(with_passfile) == dict.fromkeys(DURABILITY, "on")

        assert "no password supplied" in _refusal(f"{server}/postgres")
        assert 'password authentication failed for user "postgres"' in _refusal(
            f"postgresql://postgres:{password}x@127.0.0.1:{port}/postgres"
        )
        with psycopg.connect(with_passfile) as conn:
            method = conn.execute("SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host'").fetchall()
            open_to_public = conn.execute(
                "SELECT datname FROM pg_database "
                "WHERE datallowconn AND has_database_privilege('public', oid, 'CONNECT')"
            ).fetchall()
        assert set(method) == {("scram-sha-256",)}
        assert open_to_public == []

        # a server made before passwords were required (trust, no password file) gets one at its next start
        assert _lakehouse(env, "stack", "down").returncode == 0
        hba = home / "postgres" / "data" / "pg_hba.conf"
        hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))
        passfile.unlink()
        up = _lakehouse(env, "stack", "up", "postgres")
        assert up.returncode == 0, up.stderr[-2000:]
        assert "now asks every role for its password" in up.stderr + up.stdout
        assert passfile.read_text().strip().split(":")[-1] != password
        assert "no password supplied" in _refusal(f"{server}/postgres")
        assert _settings_of(with_passfile) == dict.fromkeys(DURABILITY, "on")
    finally:
        _lakehouse(env, "stack", "down")


def test_the_suites_stack_runs_in_the_fast_mode_it_names(postgres_stack: Settings) -> None:
    assert os.environ["LAKEHOUSE_PG_DURABILITY"] == "fast-tests-only"
    assert _settings_of(postgres_stack.postgres_dsn()) == dict.fromkeys(DURABILITY, "off")


def test_an_unknown_mode_names_the_variable_and_the_modes() -> None:
    with pytest.raises(StackError, match=r"LAKEHOUSE_PG_DURABILITY='off' is not a mode: use 'durable' or"):
        durability_mode({"LAKEHOUSE_PG_DURABILITY": "off"})
    assert durability_mode({}) == "durable"
