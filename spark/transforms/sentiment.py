"""The sentiment model's scores as Silver columns, computed by a vectorized (Arrow) pandas UDF on the executors,
where each Python worker loads the model version once (``lakehouse.ml.scoring``)."""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from lakehouse.config.specs import SentimentScoring
from lakehouse.ml.scoring import ModelVersion

SCORE_COLUMNS = ("sentiment_label", "sentiment_score", "model_version")
_SCORE_TYPE = "label string, score double"


def _scores(model: ModelVersion, text: Column) -> Column:
    """The struct ``label, score`` of ``text`` (null where ``text`` is null)."""

    @pandas_udf(_SCORE_TYPE)  # type: ignore[call-overload]
    def sentiment(texts: pd.Series) -> pd.DataFrame:
        from lakehouse.ml.scoring import score

        return score(model, texts)

    return sentiment(text)


def scored(events: DataFrame, scoring: SentimentScoring, model: ModelVersion | None) -> DataFrame:
    """``events`` with ``sentiment_label``, ``sentiment_score`` and ``model_version``: set on the rows ``scoring``
    selects that have a text, by ``model``; null elsewhere, and everywhere when there is no model yet."""
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
    return with_scores.select(
        *[F.col(c) for c in events.columns],
        F.col("_sentiment.label").alias("sentiment_label"),
        F.col("_sentiment.score").alias("sentiment_score"),
        F.when(F.col("_sentiment.label").isNotNull(), F.lit(model.version)).alias("model_version"),
    )
