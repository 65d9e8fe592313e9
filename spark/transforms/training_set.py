"""The sentiment model's training set from Silver ``customer_events``. Pure ``DataFrame -> DataFrame``, Spark
built-ins only.

A review is a training row when it has a rating and a non-blank text. Its label comes from its rating as
``lakehouse.ml.sentiment.label_of_rating`` says (the CASE expression is generated from that function, so the two
cannot drift apart). The split is by time: ordered by ``event_timestamp`` then ``event_id`` (a total order, so the
same rows always give the same split), the newest ``floor(rows * holdout_fraction)`` reviews are the holdout, the
rest the training part."""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.ml.sentiment import CLASSES, TEXT_COLUMN, label_of_rating

RATINGS = (1, 2, 3, 4, 5)
TRAIN, HOLDOUT = "train", "holdout"
ORDER = ("event_timestamp", "event_id")
COLUMNS = ("event_id", "tenant_id", "product_id", "event_timestamp", TEXT_COLUMN, "rating", "label", "split")


def rating_label(rating: Column) -> Column:
    """``CASE WHEN rating IN (1, 2) THEN 'negative' WHEN rating = 3 THEN 'neutral' ... END`` (null for anything
    else), built from ``label_of_rating``."""
    cases: Column | None = None
    for label in CLASSES:
        ratings = [r for r in RATINGS if label_of_rating(r) == label]
        cases = F.when(rating.isin(ratings), F.lit(label)) if cases is None else cases.when(rating.isin(ratings), label)
    assert cases is not None
    return cases


def training_set(customer_events: DataFrame, end: date, holdout_fraction: float) -> DataFrame:
    """The labelled reviews of the days before ``end`` (``event_date < end``), each marked ``train`` or
    ``holdout``, with the columns ``COLUMNS``.

    The split numbers the reviews in one window over all of them (a single partition: a few thousand to a few
    million short rows)."""
    text = F.col(TEXT_COLUMN)
    reviews = customer_events.where(
        (F.col("event_type") == "review")
        & (F.col("event_date") < F.lit(end))
        & F.col("rating").isNotNull()
        & text.isNotNull()
        & (F.trim(text) != "")
    ).select(
        "event_id", "tenant_id", "product_id", "event_timestamp", TEXT_COLUMN, "rating",
        rating_label(F.col("rating")).alias("label"),
    )  # fmt: skip
    labelled = reviews.where(F.col("label").isNotNull())
    position = F.row_number().over(Window.orderBy(*ORDER))
    total = F.count(F.lit(1)).over(Window.partitionBy())
    held_out = F.floor(total * F.lit(holdout_fraction))
    return labelled.withColumn(
        "split", F.when(position > total - held_out, F.lit(HOLDOUT)).otherwise(F.lit(TRAIN))
    ).select(*COLUMNS)
