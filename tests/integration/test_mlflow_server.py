"""The stack's MLflow tracking server and model registry, used through the real client of the project's venv:
runs with params, metrics and artifacts (kept in PostgreSQL and under the lake's folder, served through the
server), and a scikit-learn model registered, given an alias and loaded back by it as a pyfunc model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lakehouse.config.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def tracking(mlflow_stack: Settings) -> Iterator[Settings]:
    """The MLflow client pointed at the stack's server (and back where it was afterwards)."""
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_stack.mlflow.tracking_uri)
    yield mlflow_stack
    mlflow.set_tracking_uri(before)


def test_a_run_is_kept_in_postgres_and_its_artifacts_under_the_lake(tracking: Settings, unique: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    experiment_id = mlflow.create_experiment(f"stack_{unique}")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_param("window_days", 7)
        for step, value in enumerate((0.5, 0.25, 0.125)):
            mlflow.log_metric("loss", value, step=step)
        mlflow.log_text(f"notes of {unique}\n", "notes/readme.txt")

    client = MlflowClient(tracking.mlflow.tracking_uri)
    stored = client.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"window_days": "7"}
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")] == [
        (0, 0.5),
        (1, 0.25),
        (2, 0.125),
    ]
    # the client reaches artifacts through the server only
    assert stored.info.artifact_uri.startswith("mlflow-artifacts:")
    assert mlflow.artifacts.load_text(f"{stored.info.artifact_uri}/notes/readme.txt") == f"notes of {unique}\n"

    # where the server keeps them: the experiment in its PostgreSQL database, the file under the lake's folder
    with psycopg.connect(tracking.postgres_dsn(tracking.mlflow.backend_database)) as conn:
        row = conn.execute("SELECT experiment_id FROM experiments WHERE name = %s", (f"stack_{unique}",)).fetchone()
    assert row is not None and str(row[0]) == experiment_id
    kept = Path(tracking.mlflow.artifacts_destination) / experiment_id / run.info.run_id / "artifacts" / "notes"
    assert (kept / "readme.txt").read_text() == f"notes of {unique}\n"


def test_a_registered_model_is_loaded_back_by_its_alias(tracking: Settings, unique: str) -> None:
    import mlflow
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    features = rng.normal(size=(60, 3))
    labels = (features @ np.array([1.0, -2.0, 0.5]) > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    name = f"stack_model_{unique}"

    mlflow.set_experiment(f"stack_models_{unique}")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name, input_example=features[:2])
    client = MlflowClient(tracking.mlflow.tracking_uri)
    assert str(info.registered_model_version) == "1"
    client.set_registered_model_alias(name, "champion", "1")
    assert client.get_model_version_by_alias(name, "champion").version == "1"

    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    unseen = rng.normal(size=(25, 3))
    np.testing.assert_array_equal(np.asarray(loaded.predict(unseen)), model.predict(unseen))
