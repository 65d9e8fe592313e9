"""
### Review sentiment model: daily prediction drift

Daily (00:30 UTC) for the day that just ended, or for any day by hand (`airflow dags test ml_monitoring 2026-11-23`):

* **score_drift** counts the Silver reviews of the day per model version that scored them and per score bin (10
  equal bins of `sentiment_score` over [-1, 1]), computes each version's population stability index (PSI) against
  the scores of its training set's holdout (kept with the version in the MLflow registry), and replaces the day's
  rows of `serving.ml_score_drift`. A version whose PSI reaches `monitoring.psi_alert_threshold` on a day with at
  least `monitoring.min_reviews` reviews (`config/ml/sentiment.yaml`) gets a row in `serving.ml_alerts`, once.

Scoring latency needs no task: each stream batch records its own (`serving.ml_stream_scoring_latency`), and the
model server its REST latency. docs/ml.md#monitoring says how to read them.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, task
from airflow.timetables.interval import CronDataIntervalTimetable

from lakehouse.orchestration.airflow_tasks import run_sentiment_drift, task_defaults

with DAG(
    dag_id="ml_monitoring",
    description="Daily prediction drift of the review sentiment model, with alerts",
    schedule=CronDataIntervalTimetable("30 0 * * *", timezone="UTC"),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(),
    tags=["lakehouse", "ml", "monitoring", "mlflow"],
    doc_md=__doc__,
) as dag:

    @task(
        task_id="score_drift",
        inlets=[Asset("lakehouse://silver/customer_events")],
        outlets=[Asset("lakehouse://serving/ml_score_drift"), Asset("lakehouse://serving/ml_alerts")],
    )
    def score_drift(data_interval_start: datetime | None = None) -> None:
        """PSI of the day's scores per model version; an alert row over the threshold."""
        assert data_interval_start is not None
        run_sentiment_drift(data_interval_start)

    score_drift()
