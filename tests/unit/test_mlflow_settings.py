"""Where MLflow clients track runs and register models comes from each environment's configuration: the stack's
server on this machine (local, cluster), or the workspace and Unity Catalog (databricks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lakehouse.config.settings import MlflowSettings, load_settings
from lakehouse.scripts.mlflow_server import MlflowServer, mlflow_venv

DATABRICKS_ENVIRONMENT = {
    "LAKEHOUSE_HOME": "/tmp/x",
    "LAKEHOUSE_LAKE_ROOT": "abfss://lake@acme.dfs.core.windows.net/lake",
    "LAKEHOUSE_CHECKPOINT_ROOT": "abfss://lake@acme.dfs.core.windows.net/checkpoints",
    "EVENTHUBS_NAMESPACE": "acme-events",
    "EVENTHUBS_CONNECTION_STRING": "Endpoint=sb://acme-events.servicebus.windows.net/;SharedAccessKey=k",
    "LAKEHOUSE_PG_DSN": "postgresql://loader:s3cret-pw@db:5432/lakehouse",
}


def test_local_environment_tracks_to_the_stacks_server_on_its_port(tmp_path: Path) -> None:
    default = load_settings("local", environ={"LAKEHOUSE_HOME": str(tmp_path)}).mlflow
    assert default.tracking_uri == "http://127.0.0.1:5000"
    assert default.server_on_this_machine and default.server_address == ("127.0.0.1", 5000)
    assert default.backend_database == "mlflow"
    assert default.artifacts_destination == f"{tmp_path}/lake/mlflow-artifacts"
    assert default.client_env() == {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}

    moved = load_settings("local", environ={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_MLFLOW_PORT": "45050"})
    assert moved.mlflow.tracking_uri == "http://127.0.0.1:45050"
    assert moved.mlflow.server_address == ("127.0.0.1", 45050)


def test_cluster_environment_shares_the_server_on_this_machine_unless_told_otherwise(tmp_path: Path) -> None:
    local = load_settings("local", environ={"LAKEHOUSE_HOME": str(tmp_path)}).mlflow
    assert load_settings("cluster", environ={"LAKEHOUSE_HOME": str(tmp_path)}).mlflow == local

    remote = load_settings(
        "cluster",
        environ={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_MLFLOW_TRACKING_URI": "https://mlflow.internal"},
    ).mlflow
    assert remote.server_address == ("mlflow.internal", 443)
    assert not remote.server_on_this_machine


def test_databricks_environment_tracks_to_the_workspace_and_registers_in_unity_catalog() -> None:
    mlflow = load_settings("databricks", environ=DATABRICKS_ENVIRONMENT).mlflow
    assert mlflow.tracking_uri == "databricks" and mlflow.registry_uri == "databricks-uc"
    assert mlflow.server_address is None and not mlflow.server_on_this_machine
    assert mlflow.client_env() == {"MLFLOW_TRACKING_URI": "databricks", "MLFLOW_REGISTRY_URI": "databricks-uc"}


def test_a_server_on_this_machine_needs_a_folder_for_its_artifacts() -> None:
    with pytest.raises(ValidationError, match="artifacts_destination"):
        MlflowSettings(tracking_uri="http://localhost:5000")
    assert MlflowSettings(tracking_uri="https://mlflow.internal").artifacts_destination == ""


def test_the_server_keeps_its_backend_url_out_of_its_command_line(tmp_path: Path) -> None:
    environ = {
        "LAKEHOUSE_HOME": str(tmp_path),
        "LAKEHOUSE_MLFLOW_PORT": "45050",
        "LAKEHOUSE_PG_DSN": "postgresql://loader:s3cret-pw@db:5432/lakehouse",
    }
    server = MlflowServer(load_settings("local", environ=environ))
    argv = server.argv()
    assert argv[argv.index("--port") + 1] == "45050"
    assert argv[argv.index("--artifacts-destination") + 1] == f"{tmp_path}/lake/mlflow-artifacts"
    assert "--serve-artifacts" in argv and "s3cret-pw" not in " ".join(argv)
    assert server.env()["MLFLOW_BACKEND_STORE_URI"] == "postgresql+psycopg2://loader:s3cret-pw@db:5432/mlflow"
    assert server.env()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_the_servers_virtualenv_is_keyed_by_its_pins(tmp_path: Path) -> None:
    pins = tmp_path / "mlflow-server.txt"
    pins.write_text("mlflow==3.17.2\n")
    first = mlflow_venv(pins).folder
    assert first == mlflow_venv(pins).folder
    pins.write_text("mlflow==3.17.1\n")
    assert mlflow_venv(pins).folder != first
    assert not mlflow_venv(pins).is_ready
