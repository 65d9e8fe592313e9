"""The sentiment model's training set from Silver customer events (lakehouse.spark.transforms.training_set), on a tiny
hand-made frame: which events are training rows, their labels, and the time-based holdout."""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse.ml.sentiment import label_of_rating
from lakehouse.spark.transforms.training_set import rating_label, training_set

SCHEMA = (
    "event_id string, event_type string, tenant_id string, product_id string, event_timestamp timestamp, "
    "event_date date, rating bigint, review_text string"
)
EXPECTED_SCHEMA = (
    "event_id string, tenant_id string, product_id string, event_timestamp timestamp, review_text string, "
    "rating bigint, label string, split string"
)


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour)


def test_reviews_with_a_text_and_a_rating_before_the_end_newest_fifth_held_out(spark: SparkSession) -> None:
    events = [
        # eleven reviews before 2026-11-23, one per rating and then some; e05 and e06 share a time: id decides
        ("e01", "review", "t1", "P1", _at(20, 9), date(2026, 11, 20), 1, "Broke on day one."),
        ("e02", "review", "t1", "P1", _at(20, 10), date(2026, 11, 20), 2, "Not great."),
        ("e03", "review", "t2", "P2", _at(20, 11), date(2026, 11, 20), 3, "It is fine."),
        ("e04", "review", "t2", "P2", _at(21, 8), date(2026, 11, 21), 4, "Works well."),
        ("e06", "review", "t1", "P3", _at(21, 9), date(2026, 11, 21), 5, "Love it!"),
        ("e05", "review", "t1", "P3", _at(21, 9), date(2026, 11, 21), 4, "Good value."),
        ("e07", "review", "t1", "P1", _at(22, 7), date(2026, 11, 22), 5, "Perfect."),
        ("e08", "review", "t2", "P2", _at(22, 8), date(2026, 11, 22), 3, "Okay I guess."),
        ("e09", "review", "t2", "P4", _at(22, 9), date(2026, 11, 22), 1, "Awful."),
        ("e10", "review", "t1", "P4", _at(22, 10), date(2026, 11, 22), 4, "Nice."),
        ("e11", "review", "t1", "P4", _at(22, 23), date(2026, 11, 22), 2, "Meh, it broke."),
        # left out: no text, a blank text, no rating, not a review, on or after the end date
        ("x1", "review", "t1", "P1", _at(20, 12), date(2026, 11, 20), 5, None),
        ("x2", "review", "t1", "P1", _at(20, 13), date(2026, 11, 20), 1, "   "),
        ("x3", "review", "t1", "P1", _at(20, 14), date(2026, 11, 20), None, "No stars given."),
        ("x4", "page_view", "t1", "P1", _at(20, 15), date(2026, 11, 20), None, None),
        ("x5", "add_to_cart", "t1", "P1", _at(20, 16), date(2026, 11, 20), 4, "Odd but typed."),
        ("x6", "review", "t1", "P1", _at(23, 0), date(2026, 11, 23), 5, "Too late for this set."),
    ]
    # 11 reviews: floor(11 * 0.2) = 2 held out, the two newest (e10, e11)
    expected = [
        ("e01", "t1", "P1", _at(20, 9), "Broke on day one.", 1, "negative", "train"),
        ("e02", "t1", "P1", _at(20, 10), "Not great.", 2, "negative", "train"),
        ("e03", "t2", "P2", _at(20, 11), "It is fine.", 3, "neutral", "train"),
        ("e04", "t2", "P2", _at(21, 8), "Works well.", 4, "positive", "train"),
        ("e05", "t1", "P3", _at(21, 9), "Good value.", 4, "positive", "train"),
        ("e06", "t1", "P3", _at(21, 9), "Love it!", 5, "positive", "train"),
        ("e07", "t1", "P1", _at(22, 7), "Perfect.", 5, "positive", "train"),
        ("e08", "t2", "P2", _at(22, 8), "Okay I guess.", 3, "neutral", "train"),
        ("e09", "t2", "P4", _at(22, 9), "Awful.", 1, "negative", "train"),
        ("e10", "t1", "P4", _at(22, 10), "Nice.", 4, "positive", "holdout"),
        ("e11", "t1", "P4", _at(22, 23), "Meh, it broke.", 2, "negative", "holdout"),
    ]

    result = training_set(spark.createDataFrame(events, SCHEMA), date(2026, 11, 23), 0.2)

    assertDataFrameEqual(result, spark.createDataFrame(expected, EXPECTED_SCHEMA), checkRowOrder=False)
    # floor(11 * 0.6) = 6 held out: the boundary falls between e05 and e06, which share a time (the id decides)
    wider = training_set(spark.createDataFrame(events, SCHEMA), date(2026, 11, 23), 0.6)
    holdout_ids = sorted(r["event_id"] for r in wider.where("split = 'holdout'").collect())
    assert holdout_ids == ["e06", "e07", "e08", "e09", "e10", "e11"]


def test_the_label_expression_matches_the_contract(spark: SparkSession) -> None:
    ratings = spark.createDataFrame([(r,) for r in (None, 0, 1, 2, 3, 4, 5, 6)], "rating bigint")

    labels = dict(ratings.select("rating", rating_label(F.col("rating")).alias("label")).collect())

    assert labels == {
        None: None, 0: None, 1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive", 6: None,
    }  # fmt: skip
    assert all(labels[r] == label_of_rating(r) for r in (1, 2, 3, 4, 5))
