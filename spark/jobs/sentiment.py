"""Sentiment model job: the Gold training set from Silver reviews, a training run registered in MLflow, and the
promotion gate that may make it the champion.

spark-submit spark/jobs/sentiment.py training-set --end 2026-11-23
spark-submit spark/jobs/sentiment.py train --run-key ml_sentiment/manual__2026-11-23
spark-submit spark/jobs/sentiment.py gate  --run-key ml_sentiment/manual__2026-11-23 [--dsn-env LAKEHOUSE_PG_DSN]
spark-submit spark/jobs/sentiment.py all   --end 2026-11-23 [--run-key KEY]

``training-set`` rewrites gold.review_training_set (config/ml/sentiment.yaml) from the reviews of the days before
``--end``, with its time-based holdout. ``train`` reads it (at its current Delta version, logged with the run),
searches and trains the scikit-learn pipeline, logs the run and registers the model; a finished run with the same
run key is reused, not repeated. ``gate`` evaluates that candidate, the champion and the VADER baseline on the
holdout of the same table version, records the decision in serving.ml_model_decisions and moves the champion
alias only when the candidate wins. Reruns with the same end date and run key change nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import uuid
from datetime import date
from typing import TYPE_CHECKING, Any

from pyspark.sql import SparkSession

from lakehouse.config.ml import SentimentSpec, sentiment_spec
from lakehouse.config.settings import LakeTable, Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.config.specs import event_type
from lakehouse.ml.errors import RegistryError
from lakehouse.ml.sentiment import TEXT_COLUMN
from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.io.delta import delta_ref, read_table, save
from lakehouse.spark.jobs.common import run_job
from lakehouse.spark.session import get_spark
from lakehouse.spark.transforms.training_set import HOLDOUT, ORDER, TRAIN, training_set

if TYPE_CHECKING:
    import pandas as pd

    from lakehouse.ml.registry import Candidate
    from lakehouse.postgres.ml_decisions import ModelDecision

log = logging.getLogger(__name__)
SOURCE = "customer_events"


def training_table(settings: Settings, spec: SentimentSpec) -> LakeTable:
    """The Gold table of the training set."""
    return settings.storage.table("gold", spec.training_set.table)


def build_training_set(spark: SparkSession, settings: Settings, spec: SentimentSpec, end: date) -> int:
    """Rewrite the training set from Silver's reviews of the days before ``end`` (one overwrite commit: the same
    Silver rows and end give the same rows and split); returns the table's new Delta version."""
    silver_table = settings.storage.table("silver", event_type(SOURCE).tables.silver)
    silver = read_table(spark, silver_table)
    if silver is None:
        raise SparkJobError(f"no Silver table {silver_table}: stream {SOURCE} events first (lakehouse stream)")
    rows = training_set(silver, end, spec.training_set.holdout_fraction)
    table = training_table(settings, spec)
    save(spark, rows.write.format("delta").mode("overwrite").option("overwriteSchema", "true"), table)
    version = table_version(spark, table)
    log.info("training set %s (version %d): the reviews before %s", table, version, end)
    return version


def table_version(spark: SparkSession, table: LakeTable) -> int:
    """The Delta table's latest version."""
    latest = spark.sql(f"DESCRIBE HISTORY {delta_ref(table)} LIMIT 1").select("version").first()
    if latest is None:
        raise SparkJobError(f"{table} has no history: build the training set first")
    return int(latest[0])


def read_training_set(spark: SparkSession, table: LakeTable, version: int, split: str | None = None) -> pd.DataFrame:
    """The training set as of ``version`` (one split, or both), in its fixed order (event time, event id): the
    cross-validation folds follow the row order."""
    frame = spark.sql(f"SELECT * FROM {delta_ref(table)} VERSION AS OF {int(version)}")
    if split is not None:
        frame = frame.where(frame["split"] == split)
    return frame.select(*ORDER, TEXT_COLUMN, "label", "split").orderBy(*ORDER).toPandas()


def train(spark: SparkSession, settings: Settings, spec: SentimentSpec, run_key: str) -> Candidate:
    """Train on the training set's current version and register the model, unless a finished run with
    ``run_key`` did already (then that run's candidate)."""
    from lakehouse.ml import registry, training

    client = registry.connect(settings.mlflow)
    existing = registry.find_candidate(client, settings.mlflow, run_key)
    if existing is not None:
        log.info("run key %s was trained already: run %s, version %s", run_key, existing.run_id, existing.version)
        return existing
    table = training_table(settings, spec)
    if read_table(spark, table) is None:
        raise SparkJobError(f"no training set {table}: run the training-set step first")
    version = table_version(spark, table)
    rows = read_training_set(spark, table, version)
    train_rows, holdout = rows[rows["split"] == TRAIN], rows[rows["split"] == HOLDOUT]
    training.check_training_data(train_rows, holdout, spec.training_set, spec.search.cv_folds)
    log.info("training on %d reviews, holding out %d (%s version %d)", len(train_rows), len(holdout), table, version)
    trained = training.train(train_rows, holdout, spec.search)
    details: dict[str, Any] = {"training_set_table": str(table), "training_set_version": version}
    return registry.log_candidate(
        settings.mlflow, spec, trained, run_key, details, list(train_rows[TEXT_COLUMN].head(registry.EXAMPLE_ROWS))
    )


def gate(spark: SparkSession, settings: Settings, spec: SentimentSpec, run_key: str, dsn: str) -> ModelDecision:
    """The promotion gate on the candidate the run key's training run registered."""
    from lakehouse.ml import promotion, registry

    client = registry.connect(settings.mlflow)
    candidate = registry.find_candidate(client, settings.mlflow, run_key)
    if candidate is None:
        raise RegistryError(
            f"no finished training run with run key {run_key!r} in experiment {settings.mlflow.experiment!r}: "
            "run the train step first"
        )
    holdout = read_training_set(spark, training_table(settings, spec), candidate.training_set_version, HOLDOUT)
    return promotion.promote(settings, spec, candidate, holdout, dsn)


def arguments() -> argparse.ArgumentParser:
    """The job's command line (what ``lakehouse-job sentiment`` and ``spark-submit spark/jobs/sentiment.py``
    take)."""
    parser = argparse.ArgumentParser(
        prog="sentiment", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "action",
        choices=("training-set", "train", "gate", "all"),
        help="training-set: rebuild the Gold training set; train: train and register a candidate; gate: promote "
        "it or not; all: the three in turn",
    )
    parser.add_argument(
        "--end", type=date.fromisoformat, help="training-set, all: the reviews of the days before this one"
    )
    parser.add_argument(
        "--run-key",
        help="train, gate: names the training run (e.g. the Airflow run); all: default a new one",
    )
    parser.add_argument(
        "--dsn-env",
        default="LAKEHOUSE_PG_DSN",
        help="environment variable holding the serving DSN (default: LAKEHOUSE_PG_DSN, else the environment config)",
    )
    return parser


def main(argv: list[str]) -> None:
    """Parse the command line and run one step (or all three)."""
    args = arguments().parse_args(argv)
    if args.action in ("training-set", "all") and args.end is None:
        raise SparkJobError(f"{args.action} needs --end YYYY-MM-DD")
    run_key: str = args.run_key or (f"cli/{uuid.uuid4()}" if args.action == "all" else "")
    if args.action in ("train", "gate") and not run_key:
        raise SparkJobError(f"{args.action} needs --run-key (the gate finds the candidate the train step made by it)")
    settings = current_settings()
    spec = sentiment_spec()
    dsn = os.environ.get(args.dsn_env) or settings.postgres_dsn()
    spark = get_spark("lakehouse-sentiment")
    if args.action in ("training-set", "all"):
        build_training_set(spark, settings, spec, args.end)
    if args.action in ("train", "all"):
        train(spark, settings, spec, run_key)
    if args.action in ("gate", "all"):
        decision = gate(spark, settings, spec, run_key, dsn)
        log.info("%s", decision.reason)


if __name__ == "__main__":
    run_job(main)
