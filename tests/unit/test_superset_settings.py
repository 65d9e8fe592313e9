"""Superset's place in each environment's configuration, and what its start-up generates into the state folder:
secrets made once (mode 0600), kept out of its command line, and a read-only login on the serving database."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from lakehouse.config.settings import load_settings
from lakehouse.scripts.errors import PrerequisiteError
from lakehouse.scripts.stack import LocalStack
from lakehouse.scripts.superset_server import SupersetCredentials, SupersetServer, superset_config, superset_venv

DATABRICKS_ENVIRONMENT = {
    "LAKEHOUSE_HOME": "/tmp/x",
    "LAKEHOUSE_CHECKPOINT_ROOT": "abfss://lake@acme.dfs.core.windows.net/checkpoints",
    "EVENTHUBS_NAMESPACE": "acme-events",
    "EVENTHUBS_CONNECTION_STRING": "Endpoint=sb://acme-events.servicebus.windows.net/;SharedAccessKey=k",
    "LAKEHOUSE_PG_DSN": "postgresql://loader:s3cret-pw@db:5432/lakehouse",
}


def test_local_and_cluster_run_superset_on_its_port(tmp_path: Path) -> None:
    for environment in ("local", "cluster"):
        superset = load_settings(environment, environ={"LAKEHOUSE_HOME": str(tmp_path)}).superset
        assert superset is not None
        assert (superset.port, superset.url) == (8088, "http://127.0.0.1:8088")
        assert (superset.metadata_database, superset.reader_role) == ("superset", "superset_bi")
        assert superset.connection_name == "lakehouse serving"
    moved = load_settings("local", environ={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_SUPERSET_PORT": "48088"})
    assert moved.superset is not None and moved.superset.url == "http://127.0.0.1:48088"


def test_databricks_has_no_superset_and_its_stack_shows_none() -> None:
    settings = load_settings("databricks", environ=DATABRICKS_ENVIRONMENT)
    assert settings.superset is None
    server = SupersetServer(settings)
    assert not server.configured and server.client_env() == {}
    assert "superset" not in [s.name for s in LocalStack(settings).status()]


def test_the_secrets_are_generated_once_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "superset" / "credentials.json"
    first = SupersetCredentials.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len({first.secret_key, first.admin_password, first.reader_password}) == 3
    assert min(len(first.secret_key), len(first.admin_password), len(first.reader_password)) >= 24
    assert SupersetCredentials.load_or_create(path) == first


def test_secrets_stay_out_of_the_command_line_and_the_reader_logs_in_as_its_own_role(tmp_path: Path) -> None:
    environ = {
        "LAKEHOUSE_HOME": str(tmp_path),
        "LAKEHOUSE_SUPERSET_PORT": "48088",
        "LAKEHOUSE_PG_DSN": "postgresql://loader:s3cret-pw@db:5432/lakehouse?sslmode=require",
    }
    server = SupersetServer(load_settings("local", environ=environ))
    credentials = server.credentials()
    argv = " ".join(server.argv())
    assert "--bind 127.0.0.1:48088" in argv
    assert not {"s3cret-pw", credentials.admin_password, credentials.reader_password, credentials.secret_key} & set(
        argv.split()
    )
    assert server.env()["LAKEHOUSE_SUPERSET_METADATA_URI"] == (
        "postgresql+psycopg2://loader:s3cret-pw@db:5432/superset?sslmode=require"
    )
    assert server.env()["SUPERSET_CONFIG_PATH"] == str(tmp_path / "superset" / "superset_config.py")
    assert server.reader_uri() == (
        f"postgresql+psycopg2://superset_bi:{credentials.reader_password}@db:5432/lakehouse?sslmode=require"
    )


def test_stack_env_prints_the_admin_password_only_when_asked(tmp_path: Path) -> None:
    stack = LocalStack(load_settings("local", environ={"LAKEHOUSE_HOME": str(tmp_path)}))
    password = stack.superset.credentials().admin_password
    assert "export LAKEHOUSE_SUPERSET_URL=http://127.0.0.1:8088" in stack.env_exports()
    assert "export LAKEHOUSE_SUPERSET_USERNAME=admin" in stack.env_exports()
    assert password not in stack.env_exports()
    assert f"export LAKEHOUSE_SUPERSET_PASSWORD={password}" in stack.env_exports(show_secrets=True)


def test_the_virtualenv_is_keyed_by_its_pins(tmp_path: Path) -> None:
    pins = tmp_path / "superset.txt"
    pins.write_text("apache-superset==6.1.0\n")
    first = superset_venv(pins).folder
    assert first.name.startswith("superset-") and superset_venv(pins).bin() == first / "bin" / "superset"
    pins.write_text("apache-superset==6.0.0\n")
    assert superset_venv(pins).folder != first


def test_a_taken_port_stops_the_start_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        environ = {"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_SUPERSET_PORT": str(port)}
        with pytest.raises(PrerequisiteError) as raised:
            SupersetServer(load_settings("local", environ=environ)).start()
    message = str(raised.value)
    assert "\n" not in message
    assert f"port {port} needed by Superset is in use" in message
    assert "export LAKEHOUSE_SUPERSET_PORT=<free port>" in message


@pytest.mark.parametrize(("seconds", "expected"), [("300", "FileSystemCache"), ("0", "NullCache")])
def test_chart_data_is_cached_on_disk_for_the_configured_time_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: str, expected: str
) -> None:
    import runpy

    environ = {"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_SUPERSET_DATA_CACHE_SECONDS": seconds}
    superset = load_settings("local", environ=environ).superset
    assert superset is not None and superset.data_cache_seconds == int(seconds)
    (tmp_path / "superset_config.py").write_text(superset_config(superset))
    SupersetCredentials.load_or_create(tmp_path / "credentials.json")
    monkeypatch.setenv("LAKEHOUSE_SUPERSET_METADATA_URI", "postgresql://unused")
    generated = runpy.run_path(str(tmp_path / "superset_config.py"))
    assert generated["DATA_CACHE_CONFIG"]["CACHE_TYPE"] == expected
    if seconds != "0":
        assert generated["DATA_CACHE_CONFIG"]["CACHE_DEFAULT_TIMEOUT"] == int(seconds)
        assert generated["DATA_CACHE_CONFIG"]["CACHE_DIR"] == str(tmp_path / "cache" / "chart-data")
    # the real-time revenue dashboard's auto-refresh reads past the cache
    assert generated["DASHBOARD_AUTO_REFRESH_MODE"] == "force"
