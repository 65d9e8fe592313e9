"""The sentiment model's training on the real stack: generated reviews in a private lake's Silver table -> the
Gold training set -> a training run in the stack's MLflow server -> the promotion gate, recording its decision in
the test's own serving database.

Three runs of one model (a name of the test's own): the job's steps on the first days' reviews (no champion yet:
promoted, as it beats VADER), the job's steps on all of them (beats that champion on the new holdout: promoted),
then the ``ml_sentiment`` DAG through Airflow (``dag.test``) on the same data (the same model again: it ties the
champion, so nothing moves); then retries of the DAG run's train and gate steps, which change nothing. The split,
the labels and every macro-F1 the gate compared are computed here again from the generated events, with
scikit-learn's and VADER's own functions.

The DAG's tasks reach Spark ``in-process``, on the suite's own driver (the ``spark`` fixture): what each deploy mode
does is tested with the Gold jobs (test_cli_gold.py, the backfill test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from sklearn.metrics import f1_score

from lakehouse.config.ml import sentiment_spec
from lakehouse.config.settings import Settings, settings
from lakehouse.spark.jobs import sentiment as job
from tests.review_samples import CLASSES, expected_split, review_events, write_silver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# the weekly DAG's interval ends on a Monday: its run at 2026-11-30 covers 2026-11-23..29, after every review
FIRST_END, END = date(2026, 11, 23), date(2026, 11, 30)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return review_events()


@pytest.fixture
def ml_env(
    mlflow_stack: Settings,
    airflow_db: Settings,
    isolated_serving: Settings,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Settings]:
    """isolated_serving with a registered model and an experiment of the test's own, Spark in the task process."""
    monkeypatch.setenv("LAKEHOUSE_MLFLOW_MODEL_NAME", f"sentiment_{unique}")
    monkeypatch.setenv("LAKEHOUSE_MLFLOW_EXPERIMENT", f"sentiment_{unique}")
    monkeypatch.setenv("LAKEHOUSE_SPARK_DEPLOY", "in-process")
    settings.cache_clear()
    yield settings()
    settings.cache_clear()


def decisions(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        cursor = conn.execute("SELECT * FROM serving.ml_model_decisions ORDER BY decided_at")
        names = [d.name for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def champion(client: Any, env: Settings) -> str | None:
    return client.get_registered_model(env.mlflow.model_name).aliases.get(env.mlflow.champion_alias)


def versions(client: Any, env: Settings) -> list[int]:
    return sorted(int(v.version) for v in client.search_model_versions(f"name = '{env.mlflow.model_name}'"))


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    return float(f1_score(truth, predicted, labels=CLASSES, average="macro", zero_division=0.0))


def scores_on(env: Settings, version: str, holdout: Any) -> float:
    """Macro-F1 of a registered version on the holdout rows, from its pyfunc's class probabilities."""
    import mlflow
    import numpy as np

    model = mlflow.pyfunc.load_model(f"models:/{env.mlflow.model_name}/{version}")
    probabilities = np.asarray(model.predict(holdout["review_text"]))
    assert probabilities.shape == (len(holdout), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    return macro_f1(list(holdout["label"]), [CLASSES[i] for i in probabilities.argmax(axis=1)])


def vader_f1(holdout: Any) -> float:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    compounds = [analyzer.polarity_scores(text)["compound"] for text in holdout["review_text"]]
    predicted = ["positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral" for c in compounds]
    return macro_f1(list(holdout["label"]), predicted)


def run_steps(env: Settings, client: Any, end: date) -> str:
    """The job's three steps, as the DAG runs them, for a run key of their own; the alias does not move before the
    gate. Returns the run key."""
    key = f"test/{uuid.uuid4()}"
    registered = client.search_registered_models(f"name = '{env.mlflow.model_name}'")
    before = champion(client, env) if registered else None
    job.main(["training-set", f"--end={end.isoformat()}"])
    job.main(["train", f"--run-key={key}"])
    assert champion(client, env) == before, "training alone must not move the champion alias"
    job.main(["gate", f"--run-key={key}"])
    return key


def run_dag(end: date) -> str:
    """The ml_sentiment DAG through Airflow for the week before ``end`` (a Monday). Returns its run key."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / "ml_sentiment.py")).get_dag("ml_sentiment")
    assert dag is not None
    run = dag.test(logical_date=datetime(end.year, end.month, end.day, tzinfo=UTC))
    assert run.state == "success"
    assert run.data_interval_end == datetime(end.year, end.month, end.day, tzinfo=UTC)
    return f"ml_sentiment/{run.run_id}"


def check_run(spark: Any, env: Settings, client: Any, events: list[dict[str, Any]], key: str, end: date) -> dict:
    """The training set, the MLflow run and the decision row of one run agree with each other and with what is
    computed here; returns the decision row."""
    rows = [row for row in decisions(env.postgres_dsn()) if row["model_name"] == env.mlflow.model_name]
    decision = rows[-1]
    version = len(rows)
    gold = env.storage.table_path("gold", "review_training_set")

    # the training set: the reviews before the end, labelled from their rating, the newest fifth held out
    table = spark.read.format("delta").load(gold)
    assert {r["event_id"]: (r["label"], r["split"]) for r in table.collect()} == expected_split(events, end)

    # the run in MLflow and the decision in PostgreSQL tell the same numbers
    mlflow_run = client.get_run(decision["run_id"])
    assert mlflow_run.data.tags["lakehouse.run_key"] == key
    assert mlflow_run.data.tags["lakehouse.model_version"] == decision["candidate_version"] == str(version)
    metrics = mlflow_run.data.metrics
    assert decision["candidate_macro_f1"] == metrics["holdout_macro_f1"]
    assert decision["baseline_macro_f1"] == metrics["baseline_macro_f1"]
    assert decision["champion_macro_f1"] == metrics.get("champion_macro_f1")
    assert {f"holdout_f1_{c}" for c in CLASSES} | {"holdout_accuracy", "cv_macro_f1"} <= set(metrics)
    assert int(mlflow_run.data.params["training_set_version"]) == decision["training_set_version"]

    # every number the gate compared, again: the registered models' pyfuncs and VADER on the same holdout
    holdout = (
        spark.read.format("delta")
        .option("versionAsOf", decision["training_set_version"])
        .load(gold)
        .where("split = 'holdout'")
        .toPandas()
    )
    assert decision["holdout_rows"] == len(holdout) == int(mlflow_run.data.params["holdout_rows"])
    assert decision["candidate_macro_f1"] == pytest.approx(scores_on(env, decision["candidate_version"], holdout))
    assert decision["baseline_macro_f1"] == pytest.approx(vader_f1(holdout))
    if decision["champion_version_before"] is not None:
        expected = scores_on(env, decision["champion_version_before"], holdout)
        assert decision["champion_macro_f1"] == pytest.approx(expected)
    margins = sentiment_spec().gate
    gains_baseline = decision["candidate_macro_f1"] - decision["baseline_macro_f1"] >= margins.min_gain_over_baseline
    gains_champion = decision["champion_macro_f1"] is None or (
        decision["candidate_macro_f1"] - decision["champion_macro_f1"] >= margins.min_gain_over_champion
    )
    assert decision["promoted"] is (gains_baseline and gains_champion), decision["reason"]
    assert mlflow_run.data.tags["lakehouse.gate"] == ("promoted" if decision["promoted"] else "rejected")
    return decision


def test_training_registers_and_the_gate_alone_moves_the_champion(
    ml_env: Settings, spark: Any, events: list[dict[str, Any]]
) -> None:
    import mlflow
    from mlflow import MlflowClient

    env = ml_env
    write_silver(spark, env, events)
    client = MlflowClient(env.mlflow.tracking_uri)
    mlflow.set_tracking_uri(env.mlflow.tracking_uri)

    first = check_run(spark, env, client, events, run_steps(env, client, FIRST_END), FIRST_END)
    second = check_run(spark, env, client, events, run_steps(env, client, END), END)
    dag_key = run_dag(END)
    third = check_run(spark, env, client, events, dag_key, END)

    # the first candidate had no champion to beat; the second, trained on more reviews, beat it on the new holdout
    assert (first["champion_version_before"], first["promoted"]) == (None, True)
    assert (second["champion_version_before"], second["promoted"]) == ("1", True)
    # the same data again, through the DAG: the same model, the same score as the champion, so no promotion
    assert (third["champion_version_before"], third["promoted"]) == ("2", False)
    assert third["candidate_macro_f1"] == third["champion_macro_f1"]
    assert champion(client, env) == "2"
    assert versions(client, env) == [1, 2, 3]

    # the champion loads by its alias; its signature takes the texts as a 1-D tensor of strings
    model = mlflow.pyfunc.load_model(f"models:/{env.mlflow.model_name}@{env.mlflow.champion_alias}")
    schema = model.metadata.get_input_schema()
    assert schema.is_tensor_spec() and schema.inputs[0].shape == (-1,)
    # and the stream's scoring finds and uses it as it is
    from lakehouse.ml import scoring

    found = scoring.champion(env.mlflow)
    assert found is not None and (found.version, found.run_id) == ("2", second["run_id"])
    scored = scoring.score(found, pd.Series(["Absolutely love it, works great.", "Broke on day two. Awful.", None]))
    assert list(scored["label"]) == ["positive", "negative", None]

    # retries of the DAG run's steps: the train step finds its finished run, the gate its recorded decision
    recorded = decisions(env.postgres_dsn())
    job.main(["train", f"--run-key={dag_key}"])
    job.main(["gate", f"--run-key={dag_key}"])
    assert decisions(env.postgres_dsn()) == recorded
    assert versions(client, env) == [1, 2, 3]
    assert champion(client, env) == "2"

    # a rollback, as docs/ml.md shows it: the alias back to version 1, which then loads by it
    MlflowClient(env.mlflow.tracking_uri).set_registered_model_alias(env.mlflow.model_name, "champion", "1")
    rolled_back = mlflow.pyfunc.load_model(f"models:/{env.mlflow.model_name}@champion")
    assert rolled_back.metadata.run_id == first["run_id"]
