"""
### Review sentiment model: training set → train → promotion gate

Weekly (Mondays, 00:00 UTC), or when triggered by hand, for the reviews of the days before the run's end (the end of
its data interval; for a manual run without one, the day it was triggered):

* **training_set** rewrites the Gold table `review_training_set` from Silver `customer_events`: every review with a
  rating and a text, labelled from its rating (1-2 negative, 3 neutral, 4-5 positive), the newest 20% (by event
  time, then event id) held out;
* **train** trains TF-IDF (1-2 grams) + logistic regression, C and class weight chosen by cross-validation on the
  training part, logs the run (params, holdout macro-F1, per-class F1, accuracy, the model with its signature) to
  MLflow and registers a new version of the model, with no alias; a retry reuses a finished run;
* **gate** evaluates the candidate, the current `champion` and the VADER lexicon baseline on the same holdout, records
  the decision in `serving.ml_model_decisions`, and moves the `champion` alias to the candidate only when it beats
  both by the margins of `config/ml/sentiment.yaml` (0.01 and 0.05 macro-F1).

The model name, the alias and the tracking server come from the environment (`mlflow` section). Roll back by
pointing the alias at an earlier version (docs/ml.md). Data errors (too few reviews) fail without retries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, task
from airflow.timetables.interval import CronDataIntervalTimetable

from lakehouse.config.ml import sentiment_spec
from lakehouse.orchestration.airflow_tasks import (
    run_sentiment_gate,
    run_sentiment_train,
    run_sentiment_training_set,
    task_defaults,
)

training_table = sentiment_spec().training_set.table

with DAG(
    dag_id="ml_sentiment",
    description="Train the review sentiment model weekly and promote it only through the gate",
    schedule=CronDataIntervalTimetable("0 0 * * 1", timezone="UTC"),
    start_date=datetime(2025, 1, 6),
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(),
    tags=["lakehouse", "ml", "gold", "mlflow"],
    doc_md=__doc__,
) as dag:

    @task(
        task_id="training_set",
        inlets=[Asset("lakehouse://silver/customer_events")],
        outlets=[Asset(f"lakehouse://gold/{training_table}")],
    )
    def training_set(dag_run: Any = None) -> None:
        """Silver reviews before the run's end -> the Gold training set with its time-based holdout."""
        run_sentiment_training_set(dag_run)

    @task(task_id="train", inlets=[Asset(f"lakehouse://gold/{training_table}")])
    def train(dag_run: Any = None) -> None:
        """Search, train and register a candidate version in MLflow."""
        run_sentiment_train(dag_run)

    @task(task_id="gate", outlets=[Asset("lakehouse://serving/ml_model_decisions")])
    def gate(dag_run: Any = None) -> None:
        """Candidate vs champion vs VADER on the holdout; move the champion alias only if the candidate wins."""
        run_sentiment_gate(dag_run)

    training_set() >> train() >> gate()
