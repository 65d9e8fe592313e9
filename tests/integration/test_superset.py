"""The stack's Apache Superset, through its REST API as a BI user would reach it: the admin logs in, SQL Lab reads a
serving table through the connection "lakehouse serving" as a member of bi_reader, and cannot write, refused twice
over (Superset's DML setting on that connection, and PostgreSQL's grants to bi_reader); `lakehouse stack up
superset` again changes nothing, and `lakehouse stack status` shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from lakehouse.config.settings import Settings
from lakehouse.scripts.stack import LocalStack
from lakehouse.scripts.superset_api import SupersetApi
from lakehouse.scripts.superset_server import ADMIN_USERNAME, SupersetServer

pytestmark = pytest.mark.integration
CONNECTION = "lakehouse serving"
WRITES = {
    "insert": "INSERT INTO serving.{table} VALUES ('west', 1.00)",
    "create": "CREATE TABLE serving.{table}_copy (region text)",
    "delete": "DELETE FROM serving.{table}",
}


@pytest.fixture(scope="module")
def serving_id(superset_api: SupersetApi) -> int:
    """The id of the stack's read-only connection to the serving database."""
    found = superset_api.databases(CONNECTION)
    assert len(found) == 1
    return int(found[0]["id"])


@pytest.fixture
def revenue_table(superset_stack: Settings, unique: str) -> Iterator[str]:
    """A table in serving with three known rows, created as the migrating role (bi_reader reads new tables too)."""
    table = f"t_bi_{unique}"
    with psycopg.connect(superset_stack.postgres_dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE serving.{table} (region text PRIMARY KEY, revenue numeric(12, 2))")
        conn.execute(f"INSERT INTO serving.{table} VALUES ('north', 10.50), ('south', 7.25), ('east', 0.75)")
        yield table
        conn.execute(f"DROP TABLE IF EXISTS serving.{table}, serving.{table}_copy")


def sql_lab(superset_api: SupersetApi, database_id: int, sql: str) -> tuple[int, dict[str, Any]]:
    """Run ``sql`` through SQL Lab (``/api/v1/sqllab/execute/``, synchronously); its HTTP status and answer."""
    payload = {
        "database_id": database_id,
        "sql": sql,
        "schema": "serving",
        "runAsync": False,
        "client_id": uuid.uuid4().hex[:10],
        "queryLimit": 1000,
    }
    try:
        return 200, superset_api.request("POST", "/api/v1/sqllab/execute/", payload)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def rows_of(dsn: str, table: str) -> list[tuple[Any, ...]]:
    """The table's rows, read as the superuser."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT region, revenue FROM serving.{table} ORDER BY region").fetchall()


def test_sql_lab_reads_serving_as_a_bi_reader_member(
    superset_api: SupersetApi, serving_id: int, revenue_table: str, superset_server: SupersetServer
) -> None:
    status, answer = sql_lab(
        superset_api, serving_id, f"SELECT region, revenue FROM {revenue_table} ORDER BY revenue DESC"
    )
    assert status == 200, answer
    assert answer["status"] == "success"
    assert [c["column_name"] for c in answer["columns"]] == ["region", "revenue"]
    assert [(r["region"], Decimal(str(r["revenue"]))) for r in answer["data"]] == [
        ("north", Decimal("10.50")),
        ("south", Decimal("7.25")),
        ("east", Decimal("0.75")),
    ]

    # it logs in as the reader role, a member of bi_reader (and of bi_all_tenants: the dashboards show every tenant)
    # and nothing more, which sees serving only
    shown = superset_api.request("GET", f"/api/v1/database/{serving_id}/connection")["result"]
    assert shown["sqlalchemy_uri"].startswith(f"postgresql+psycopg2://{superset_server.config.reader_role}:")
    with psycopg.connect(superset_server.settings.postgres_dsn()) as conn:
        groups = conn.execute(
            "SELECT g.rolname, r.rolsuper FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid "
            "JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = %s",
            (superset_server.config.reader_role,),
        ).fetchall()
    assert sorted(groups) == [("bi_all_tenants", False), ("bi_reader", False)]
    status, answer = sql_lab(superset_api, serving_id, "SELECT count(*) FROM lakehouse_meta.schema_migrations")
    assert status != 200
    assert "permission denied for schema lakehouse_meta" in answer["errors"][0]["message"]

    # the API shows the connection with its password masked; the password is in the state folder only
    assert shown["allow_dml"] is False
    assert superset_server.credentials().reader_password not in json.dumps(shown)
    assert superset_server.credentials().reader_password not in superset_server.service.log_file.read_text(
        errors="replace"
    )


@pytest.mark.parametrize("write", sorted(WRITES))
def test_sql_lab_cannot_write_refused_by_superset_and_by_postgres(
    superset_api: SupersetApi, serving_id: int, revenue_table: str, superset_server: SupersetServer, write: str
) -> None:
    dsn = superset_server.settings.postgres_dsn()
    before = rows_of(dsn, revenue_table)
    statement = WRITES[write].format(table=revenue_table)

    # 1. Superset: the stack's connection has allow_dml off, so SQL Lab refuses before sending anything
    status, answer = sql_lab(superset_api, serving_id, statement)
    assert status != 200
    assert [e["error_type"] for e in answer["errors"]] == ["DML_NOT_ALLOWED_ERROR"]

    # 2. PostgreSQL: a connection as the same login that allows DML is refused by bi_reader's grants
    writable = superset_api.request(
        "POST",
        "/api/v1/database/",
        {
            "database_name": f"writable {revenue_table} {write}",
            "sqlalchemy_uri": superset_server.reader_uri(),
            "expose_in_sqllab": True,
            "allow_dml": True,
        },
    )
    try:
        status, answer = sql_lab(superset_api, int(writable["id"]), statement)
    finally:
        superset_api.request("DELETE", f"/api/v1/database/{writable['id']}")
    assert status != 200
    message = " ".join(e["message"] for e in answer["errors"])
    assert "permission denied" in message, message

    assert rows_of(dsn, revenue_table) == before
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"serving.{revenue_table}_copy",)).fetchone() == (None,)


def run_lakehouse(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``lakehouse`` command as a user does, in the suite's environment."""
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.orchestration.cli", *args],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _state(superset_server: SupersetServer, superset_api: SupersetApi) -> dict[str, Any]:
    """What a second start must not change: the admin, the connection, the secrets and the read-only login."""
    settings = superset_server.settings
    with psycopg.connect(settings.postgres_dsn(superset_server.config.metadata_database)) as conn:
        admins = conn.execute(
            "SELECT id, password, created_on FROM ab_user WHERE username = %s", (ADMIN_USERNAME,)
        ).fetchall()
    with psycopg.connect(settings.postgres_dsn()) as conn:
        login = conn.execute(
            "SELECT oid, rolpassword FROM pg_authid WHERE rolname = %s", (superset_server.config.reader_role,)
        ).fetchall()
    connections = [
        {k: db[k] for k in ("id", "database_name", "changed_on")}
        for db in superset_api.request("GET", "/api/v1/database/?q=(page_size:100)")["result"]
        if db["database_name"] == CONNECTION
    ]
    return {
        "admins": admins,
        "connections": connections,
        "login": login,
        "credentials": superset_server.credentials_file.read_text(),
        "mode": oct(superset_server.credentials_file.stat().st_mode & 0o777),
    }


def test_stack_up_twice_changes_nothing_and_status_shows_it(
    superset_server: SupersetServer, superset_api: SupersetApi
) -> None:
    before = _state(superset_server, superset_api)
    assert len(before["admins"]) == 1
    assert len(before["connections"]) == 1
    assert len(before["login"]) == 1
    assert before["mode"] == "0o600"

    # a start from scratch (upgrade, admin check, init, connection check) on the existing metadata ...
    superset_server.stop()
    first = run_lakehouse("stack", "up", "superset")
    assert first.returncode == 0, first.stderr[-3000:]
    # ... and one while it runs
    second = run_lakehouse("stack", "up", "superset")
    assert second.returncode == 0, second.stderr[-3000:]
    after = _state(
        superset_server, SupersetApi(superset_server.url, ADMIN_USERNAME, superset_server.credentials().admin_password)
    )
    assert after == before

    status = run_lakehouse("stack", "status")
    line = next(line for line in status.stdout.splitlines() if " superset " in line)
    assert " up " in line and superset_server.url in line
    assert [s.up for s in LocalStack(superset_server.settings).status() if s.name == "superset"] == [True]


def test_stack_env_prints_the_admin_and_the_password_only_when_asked(superset_server: SupersetServer) -> None:
    plain = run_lakehouse("stack", "env")
    assert plain.returncode == 0, plain.stderr
    assert f"export LAKEHOUSE_SUPERSET_URL={superset_server.url}" in plain.stdout
    assert f"export LAKEHOUSE_SUPERSET_USERNAME={ADMIN_USERNAME}" in plain.stdout
    assert superset_server.credentials().admin_password not in plain.stdout

    shown = run_lakehouse("stack", "env", "--show-secrets")
    assert f"export LAKEHOUSE_SUPERSET_PASSWORD={superset_server.credentials().admin_password}" in shown.stdout


def test_a_wrong_reader_password_is_one_line_naming_the_fix(
    superset_stack: Settings, superset_server: SupersetServer
) -> None:
    """The read-only login's password in PostgreSQL no longer the credentials file's: the start's check refuses in
    one line naming the recovery, without the password."""
    from psycopg import sql

    from lakehouse.scripts.errors import StackError

    role, password = superset_server.config.reader_role, superset_server.credentials().reader_password
    superset_server.check_reader_login()  # as the stack started it
    with psycopg.connect(superset_stack.postgres_dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal("changed-elsewhere"))
        )
        try:
            with pytest.raises(StackError) as refused:
                superset_server.check_reader_login()
        finally:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    message = str(refused.value)
    assert "\n" not in message and password not in message and "changed-elsewhere" not in message
    assert f"DROP ROLE {role}" in message and str(superset_server.credentials_file) in message


def test_superset_that_cannot_start_is_one_line_and_the_demo_goes_on(
    superset_stack: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A Superset that cannot start (here its port is taken) costs the demo one line, not the run. A home of its own,
    where no Superset runs yet, on the suite's PostgreSQL."""
    import socket

    from rich.console import Console

    from lakehouse.config.settings import settings
    from lakehouse.scripts.demo import start_superset

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("LAKEHOUSE_PG_DSN", superset_stack.postgres_dsn())
        monkeypatch.setenv("LAKEHOUSE_SUPERSET_PORT", str(taken.getsockname()[1]))
        settings.cache_clear()
        try:
            console = Console(file=(tmp_path / "demo.out").open("w"), width=400)
            assert start_superset(LocalStack(settings()), console) is False
            console.file.close()
        finally:
            settings.cache_clear()
    lines = (tmp_path / "demo.out").read_text().splitlines()
    assert len(lines) == 1 and "Superset not started" in lines[0] and "LAKEHOUSE_SUPERSET_PORT" in lines[0], lines


def test_a_superset_install_that_fails_is_one_line_naming_the_fix(tmp_path: Any) -> None:
    """pip refusing the pinned requirements: one line, the virtualenv left half-built nowhere."""
    from lakehouse.scripts.errors import PrerequisiteError
    from lakehouse.scripts.server_venv import ServerVenv

    requirements = tmp_path / "superset.txt"
    requirements.write_text("apache-superset==0.0.0.dev0\n")  # no such release
    venv = ServerVenv("superset", requirements, "superset", "Superset")
    with pytest.raises(PrerequisiteError) as refused:
        venv.ensure()
    message = str(refused.value)
    assert "\n" not in message and "Superset" in message and "make setup" in message, message
    assert "No matching distribution found for apache-superset==0.0.0.dev0" in message and "fix the pins" in message
    assert not venv.folder.exists()
