"""The ml_sentiment DAG through Airflow (dag.test): generated reviews in Silver -> training_set -> train -> gate,
ending with a registered model whose champion alias the gate set, and the decision in PostgreSQL.

The tasks reach Spark ``in-process`` here, on the suite's own driver (the ``spark`` fixture): the DAG's wiring, its
entry points and the job are what this test is about; how each deploy mode reaches Spark is tested with the Gold
jobs (test_cli_gold.py, test_gold_backfill.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lakehouse.config.settings import Settings, settings
from tests.review_samples import expected_split, review_events, write_silver

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]


def test_ml_sentiment_dag_trains_registers_and_promotes_through_its_gate(
    airflow_db: Settings,
    mlflow_stack: Settings,
    isolated_serving: Settings,
    spark: Any,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from mlflow import MlflowClient

    monkeypatch.setenv("LAKEHOUSE_MLFLOW_MODEL_NAME", f"dag_sentiment_{unique}")
    monkeypatch.setenv("LAKEHOUSE_MLFLOW_EXPERIMENT", f"dag_sentiment_{unique}")
    monkeypatch.setenv("LAKEHOUSE_SPARK_DEPLOY", "in-process")
    settings.cache_clear()
    env = settings()
    events = review_events()
    write_silver(spark, env, events)

    dag = DagBag(dag_folder=str(ROOT / "dags" / "ml_sentiment.py")).get_dag("ml_sentiment")
    assert dag is not None
    # a run at Monday 2026-11-30 covers the week before it, 2026-11-23..29, after every generated review
    run = dag.test(logical_date=datetime(2026, 11, 30, tzinfo=UTC))
    assert run.state == "success"
    assert run.data_interval_end == datetime(2026, 11, 30, tzinfo=UTC)

    table = spark.read.format("delta").load(env.storage.table_path("gold", "review_training_set"))
    assert {r["event_id"]: (r["label"], r["split"]) for r in table.collect()} == expected_split(
        events, run.data_interval_end.date()
    )
    with psycopg.connect(env.postgres_dsn()) as conn:
        rows = conn.execute(
            "SELECT run_id, model_name, candidate_version, champion_version_before, promoted "
            "FROM serving.ml_model_decisions"
        ).fetchall()
    assert len(rows) == 1
    run_id, model_name, version, before, promoted = rows[0]
    assert (model_name, version, before, promoted) == (env.mlflow.model_name, "1", None, True)

    client = MlflowClient(env.mlflow.tracking_uri)
    assert client.get_run(run_id).data.tags["lakehouse.run_key"] == f"ml_sentiment/{run.run_id}"
    assert client.get_model_version_by_alias(env.mlflow.model_name, env.mlflow.champion_alias).version == "1"
