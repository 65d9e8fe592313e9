"""``gold_marts`` under ``LAKEHOUSE_ENV=databricks``: build and load are Databricks runs submitted through the
Databricks provider, the gate between them stays. No workspace is called: the test renders each run's templates
for a data interval and reads the payload the operator would post to ``runs/submit``, then compares it with the
payload written out here from the configuration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
WHEEL = "/Volumes/main/lakehouse/wheels/lakehouse-0.1.0-py3-none-any.whl"
EVENTHUBS_SECRET = "Endpoint=sb://acme-events.servicebus.windows.net/;SharedAccessKey=not-a-real-key"
PG_PASSWORD = "not-a-real-password"
ENVIRONMENT = {
    "LAKEHOUSE_ENV": "databricks",
    "LAKEHOUSE_LAKE_ROOT": "abfss://lake@acme.dfs.core.windows.net/lakehouse",
    "LAKEHOUSE_CHECKPOINT_ROOT": "abfss://lake@acme.dfs.core.windows.net/checkpoints",
    "EVENTHUBS_NAMESPACE": "acme-events",
    "EVENTHUBS_CONNECTION_STRING": EVENTHUBS_SECRET,
    "LAKEHOUSE_PG_DSN": f"postgresql://loader:{PG_PASSWORD}@db.example.com:5432/lakehouse",
    "LAKEHOUSE_DATABRICKS_WHEEL": WHEEL,
}
INTERVAL = {
    "data_interval_start": datetime(2026, 11, 20, tzinfo=UTC),
    "data_interval_end": datetime(2026, 11, 21, tzinfo=UTC),
}


def _gold_dag(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from lakehouse.config.settings import settings

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()
    bag = DagBag(dag_folder=str(DAGS / "gold_marts.py"))
    assert bag.import_errors == {}
    return bag.get_dag("gold_marts")


@pytest.fixture
def databricks_dag(airflow_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from lakehouse.config.settings import settings

    yield _gold_dag(monkeypatch, ENVIRONMENT)
    settings.cache_clear()


def _submitted(dag: Any, task_id: str) -> dict[str, Any]:
    """What the task would post to runs/submit for INTERVAL."""
    task = dag.get_task(task_id)
    task.render_template_fields(dict(INTERVAL), jinja_env=dag.get_template_env())
    return task._prepare_submit_json(dict(INTERVAL))  # type: ignore[no-any-return]


def test_build_and_load_are_databricks_runs_of_the_same_job_and_the_gate_stays(databricks_dag: Any) -> None:
    from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

    from lakehouse.config.marts import load_marts

    for mart in load_marts():
        build, gate, load = (databricks_dag.get_task(f"{mart}.{step}") for step in ("build", "dq_gate", "load"))
        assert isinstance(build, DatabricksSubmitRunOperator) and isinstance(load, DatabricksSubmitRunOperator)
        assert build.databricks_conn_id == load.databricks_conn_id == "databricks_default"
        assert not isinstance(gate, DatabricksSubmitRunOperator)
        assert gate.task_id in build.downstream_task_ids and load.task_id in gate.downstream_task_ids
        for step in ("build", "load"):
            parameters = _submitted(databricks_dag, f"{mart}.{step}")["tasks"][0]["python_wheel_task"]["parameters"]
            assert parameters == ["gold", step, mart, "--start=2026-11-20", "--end=2026-11-21"]


def test_the_payload_is_the_configured_run_and_carries_no_secret(databricks_dag: Any) -> None:
    payload = _submitted(databricks_dag, "fct_orders_daily.build")
    assert payload == {
        "run_name": "lakehouse gold_marts fct_orders_daily build 2026-11-20",
        "timeout_seconds": "3600",
        "tasks": [
            {
                "task_key": "fct_orders_daily_build",
                "python_wheel_task": {
                    "package_name": "lakehouse",
                    "entry_point": "lakehouse-job",
                    "parameters": ["gold", "build", "fct_orders_daily", "--start=2026-11-20", "--end=2026-11-21"],
                },
                "libraries": [{"whl": WHEEL}],
                "new_cluster": {
                    "spark_version": "17.3.x-scala2.13",
                    "node_type_id": "Standard_D4ds_v5",
                    "num_workers": "2",
                    "data_security_mode": "SINGLE_USER",
                    "spark_env_vars": {
                        "LAKEHOUSE_ENV": "databricks",
                        "LAKEHOUSE_CATALOG": "lakehouse",
                        "LAKEHOUSE_LAKE_ROOT": "abfss://lake@acme.dfs.core.windows.net/lakehouse",
                        "LAKEHOUSE_CHECKPOINT_ROOT": "abfss://lake@acme.dfs.core.windows.net/checkpoints",
                        "EVENTHUBS_NAMESPACE": "acme-events",
                        # secret references, resolved by Databricks on the cluster
                        "EVENTHUBS_CONNECTION_STRING": "{{secrets/lakehouse/eventhubs_connection_string}}",
                        "LAKEHOUSE_PG_DSN": "{{secrets/lakehouse/pg_dsn}}",
                    },
                },
            }
        ],
    }
    assert EVENTHUBS_SECRET not in str(payload) and PG_PASSWORD not in str(payload)


def test_an_existing_cluster_replaces_the_job_cluster(airflow_db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse.config.settings import settings

    dag = _gold_dag(monkeypatch, {**ENVIRONMENT, "LAKEHOUSE_DATABRICKS_CLUSTER_ID": "0101-123456-abcdefgh"})
    try:
        task = _submitted(dag, "fct_orders_daily.load")["tasks"][0]
    finally:
        settings.cache_clear()
    assert task["existing_cluster_id"] == "0101-123456-abcdefgh"
    assert "new_cluster" not in task
