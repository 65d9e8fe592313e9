"""The sentiment model's scores as Silver columns, computed by a vectorized (Arrow) pandas UDF on the executors,
where each Python worker loads the model version once (``lakehouse.ml.scoring``)."""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from lakehouse.config.specs import SentimentScoring
from lakehouse.ml.drift import SCORE_BINS
from lakehouse.ml.scoring import ModelVersion

SCORE_COLUMNS = ("sentiment_label", "sentiment_score", "model_version")
_SCORE_TYPE = "label string, score double, scoring_ms double"


def _scores(model: ModelVersion, text: Column) -> Column:
    """The struct ``label, score, scoring_ms`` of ``text`` (label and score null where ``text`` is null);
    ``scoring_ms`` is each row's share of the wall time its Arrow batch took to score, so that their sum over any
    rows is the time spent scoring them."""

    @pandas_udf(_SCORE_TYPE)  # type: ignore[call-overload]
    def sentiment(texts: pd.Series) -> pd.DataFrame:
        import time

        from lakehouse.ml.scoring import score

        started = time.perf_counter()
        scores = score(model, texts)
        scores["scoring_ms"] = (time.perf_counter() - started) * 1000 / max(len(texts), 1)
        return scores

    return sentiment(text)


def scored(
    events: DataFrame, scoring: SentimentScoring, model: ModelVersion | None, timing: Observation | None = None
) -> DataFrame:
    """``events`` with ``sentiment_label``, ``sentiment_score`` and ``model_version``: set on the rows ``scoring``
    selects that have a text, by ``model``; null elsewhere, and everywhere when there is no model yet. ``timing``,
    when given, observes ``scored_rows`` and ``scoring_ms`` (the UDF's wall time) of the rows as they are
    written."""
    if model is None:
        return events.select(
            "*",
            F.lit(None).cast("string").alias("sentiment_label"),
            F.lit(None).cast("double").alias("sentiment_score"),
            F.lit(None).cast("string").alias("model_version"),
        )
    selected = F.expr(scoring.where) & F.col(scoring.text_column).isNotNull()
    text = F.when(selected, F.col(scoring.text_column))
    with_scores = events.withColumn("_sentiment", _scores(model, text))
    if timing is not None:
        with_scores = with_scores.observe(
            timing,
            F.count(F.col("_sentiment.label")).alias("scored_rows"),
            F.coalesce(F.sum(F.col("_sentiment.scoring_ms")), F.lit(0.0)).alias("scoring_ms"),
        )
    return with_scores.select(
        *[F.col(c) for c in events.columns],
        F.col("_sentiment.label").alias("sentiment_label"),
        F.col("_sentiment.score").alias("sentiment_score"),
        F.when(F.col("_sentiment.label").isNotNull(), F.lit(model.version)).alias("model_version"),
    )


def score_bin(score: Column) -> Column:
    """The drift bin of a score in [-1, 1], as ``lakehouse.ml.drift.bin_of`` computes it."""
    return F.least(F.floor((score + F.lit(1.0)) / F.lit(2.0) * F.lit(SCORE_BINS)), F.lit(SCORE_BINS - 1)).cast("int")


def unscored_by(events: DataFrame, scoring: SentimentScoring, version: str) -> DataFrame:
    """The rows of ``events`` that ``scoring`` selects, with a text, that ``version`` did not score."""
    selected = F.expr(scoring.where) & F.col(scoring.text_column).isNotNull()
    return events.where(selected & ~F.col("model_version").eqNullSafe(F.lit(version)))
