"""Sentiment model job: the Gold training set from Silver reviews, a training run registered in MLflow, and the
promotion gate that may make it the champion.

spark-submit spark/jobs/sentiment.py training-set --end 2026-11-23
spark-submit spark/jobs/sentiment.py train --run-key ml_sentiment/manual__2026-11-23
spark-submit spark/jobs/sentiment.py gate  --run-key ml_sentiment/manual__2026-11-23 [--dsn-env LAKEHOUSE_PG_DSN]
spark-submit spark/jobs/sentiment.py all   --end 2026-11-23 [--run-key KEY]
spark-submit spark/jobs/sentiment.py drift --day 2026-11-23 [--dsn-env LAKEHOUSE_PG_DSN]
spark-submit spark/jobs/sentiment.py rescore --from 2026-11-01 --to 2026-11-23

``training-set`` rewrites gold.review_training_set (config/ml/sentiment.yaml) from the reviews of the days before
``--end``, with its time-based holdout. ``train`` reads it (at its current Delta version, logged with the run),
searches and trains the scikit-learn pipeline, logs the run and registers the model; a finished run with the same
run key is reused, not repeated. ``gate`` evaluates that candidate, the champion and the VADER baseline on the
holdout of the same table version, records the decision in serving.ml_model_decisions and moves the champion
alias only when the candidate wins. Reruns with the same end date and run key change nothing.

``drift`` compares each model version's scores of a day's reviews with its training set's (PSI, lakehouse.ml.drift)
and records them in serving.ml_score_drift, raising an alert in serving.ml_alerts over the threshold. ``rescore``
scores the reviews of a range of days that an older version (or none) scored again, with the champion.
"""

from __future__ import annotations

import argparse
import logging
import os
import uuid
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config.ml import SentimentSpec, sentiment_spec
from lakehouse.config.settings import LakeTable, Settings
from lakehouse.config.settings import settings as current_settings
from lakehouse.config.specs import event_type
from lakehouse.ml.errors import RegistryError
from lakehouse.ml.sentiment import TEXT_COLUMN
from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.io.delta import delta_ref, read_table, retry_on_conflict, save
from lakehouse.spark.jobs.common import run_job
from lakehouse.spark.session import get_spark
from lakehouse.spark.transforms.sentiment import SCORE_COLUMNS, score_bin, scored, unscored_by
from lakehouse.spark.transforms.training_set import HOLDOUT, ORDER, TRAIN, training_set

if TYPE_CHECKING:
    import pandas as pd

    from lakehouse.ml.registry import Candidate
    from lakehouse.postgres.ml_decisions import ModelDecision
    from lakehouse.postgres.ml_monitoring import DayDrift

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


def silver_reviews(spark: SparkSession, settings: Settings) -> tuple[DataFrame, LakeTable]:
    """The Silver table of the scored event type, and where it is."""
    table = settings.storage.table("silver", event_type(SOURCE).tables.silver)
    silver = read_table(spark, table)
    if silver is None:
        raise SparkJobError(f"no Silver table {table}: stream {SOURCE} events first (lakehouse stream)")
    return silver, table


def score_drift(spark: SparkSession, settings: Settings, spec: SentimentSpec, day: date, dsn: str) -> list[DayDrift]:
    """The drift of each model version's scores of ``day``'s reviews against its training set's, recorded in
    serving.ml_score_drift with an alert in serving.ml_alerts where it reaches the threshold (a rerun replaces the
    day's figures and raises no alert twice)."""
    from lakehouse.ml import drift, registry
    from lakehouse.postgres.ml_monitoring import DayDrift, record_drift

    silver, _ = silver_reviews(spark, settings)
    scored_that_day = silver.where(
        (F.col("event_date") == F.lit(day)) & F.col("model_version").isNotNull() & F.col("sentiment_score").isNotNull()
    )
    # one row per version and bin: the only thing brought to the driver
    counts = scored_that_day.groupBy("model_version", score_bin(F.col("sentiment_score")).alias("bin")).count()
    per_version: dict[str, dict[int, int]] = {}
    for row in counts.collect():
        per_version.setdefault(str(row["model_version"]), {})[int(row["bin"])] = int(row["count"])
    client = registry.connect(settings.mlflow)
    monitoring, model_name = spec.monitoring, settings.mlflow.model_name
    drifts = []
    for version, bins in sorted(per_version.items()):
        reference = registry.score_reference(client, settings.mlflow, version)
        if reference is None:
            log.warning("%s version %s has no reference of its training scores: no PSI", model_name, version)
        found = DayDrift(
            day=day,
            model_name=model_name,
            model_version=version,
            reviews=sum(bins.values()),
            psi=None if reference is None else drift.psi(reference, bins),
            psi_alert_threshold=monitoring.psi_alert_threshold,
            min_reviews=monitoring.min_reviews,
            bin_counts=bins,
            reference_shares=reference,
        )
        log.info(
            "%s: version %s scored %d reviews, PSI %s%s",
            day,
            version,
            found.reviews,
            "n/a" if found.psi is None else f"{found.psi:.4f}",
            " (ALERT)" if found.alert else "",
        )
        drifts.append(found)
    raised = record_drift(dsn, day, model_name, drifts)
    if raised:
        log.warning("%d drift alert(s) raised for %s in serving.ml_alerts", raised, day)
    return drifts


def rescore(spark: SparkSession, settings: Settings, first: date, last: date) -> int:
    """Score again, with the champion, the Silver reviews of the days ``first``..``last`` that another version (or
    none) scored; returns how many rows changed. One MERGE that reads only those days' partitions (retried when a
    stream's append to them conflicts). Rebuild the Gold marts of those days afterwards (``lakehouse gold``)."""
    from lakehouse.ml.scoring import champion

    model = champion(settings.mlflow)
    if model is None:
        raise SparkJobError(
            f"{settings.mlflow.model_name} has no {settings.mlflow.champion_alias!r} version to rescore with: "
            "train one (the ml_sentiment DAG)"
        )
    source = event_type(SOURCE)
    if source.sentiment is None:
        raise SparkJobError(f"{SOURCE} is not scored (no sentiment section in its event type)")
    silver, table = silver_reviews(spark, settings)
    in_days = F.col("event_date").between(F.lit(first), F.lit(last))
    key = [source.dedup_key, "event_date", *(c for c in source.partition_by if c != "event_date")]
    stale = unscored_by(silver.where(in_days), source.sentiment, model.version)
    updates = scored(stale.drop(*SCORE_COLUMNS), source.sentiment, model).select(*key, *SCORE_COLUMNS)
    view = f"rescored_{uuid.uuid4().hex}"
    updates.createOrReplaceTempView(view)
    on = " AND ".join(
        [f"t.event_date BETWEEN DATE'{first.isoformat()}' AND DATE'{last.isoformat()}'"]
        + [f"t.`{column}` = s.`{column}`" for column in key]
    )
    statement = f"MERGE INTO {delta_ref(table)} t USING {view} s ON {on} WHEN MATCHED THEN UPDATE SET " + ", ".join(
        f"t.`{column}` = s.`{column}`" for column in SCORE_COLUMNS
    )
    try:
        result = retry_on_conflict(lambda: spark.sql(statement).first(), f"rescoring {table} from {first} to {last}")
    finally:
        spark.catalog.dropTempView(view)
    changed = int(result["num_updated_rows"]) if result is not None else 0
    log.info(
        "rescored %d review(s) of %s..%s with %s version %s; rebuild the Gold marts of those days "
        "(lakehouse gold product_reviews_daily --start %s --end %s)",
        changed,
        first,
        last,
        model.name,
        model.version,
        first,
        last + timedelta(days=1),
    )
    return changed


def arguments() -> argparse.ArgumentParser:
    """The job's command line (what ``lakehouse-job sentiment`` and ``spark-submit spark/jobs/sentiment.py``
    take)."""
    parser = argparse.ArgumentParser(
        prog="sentiment", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "action",
        choices=("training-set", "train", "gate", "all", "drift", "rescore"),
        help="training-set: rebuild the Gold training set; train: train and register a candidate; gate: promote "
        "it or not; all: the three in turn; drift: the PSI of a day's scores (serving.ml_score_drift); rescore: "
        "score the reviews of a range of days again with the champion",
    )
    parser.add_argument("--day", type=date.fromisoformat, help="drift: the day (event date) of the reviews")
    parser.add_argument("--from", dest="first", type=date.fromisoformat, help="rescore: the first event date")
    parser.add_argument("--to", dest="last", type=date.fromisoformat, help="rescore: the last event date")
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
    if args.action == "drift" and args.day is None:
        raise SparkJobError("drift needs --day YYYY-MM-DD")
    if args.action == "rescore" and (args.first is None or args.last is None or args.first > args.last):
        raise SparkJobError("rescore needs --from YYYY-MM-DD --to YYYY-MM-DD, --from not after --to")
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
    if args.action == "drift":
        score_drift(spark, settings, spec, args.day, dsn)
    if args.action == "rescore":
        rescore(spark, settings, args.first, args.last)


if __name__ == "__main__":
    run_job(main)
