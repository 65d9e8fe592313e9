"""The lexicon baseline a trained model must beat: VADER's compound score (vaderSentiment), thresholded into the
classes of ``lakehouse.ml.sentiment``. It needs no training, so it scores any holdout as it is."""

from __future__ import annotations

from collections.abc import Iterable

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from lakehouse.ml.sentiment import CLASSES

NEGATIVE, NEUTRAL, POSITIVE = CLASSES


def label_of_compound(compound: float, positive_threshold: float = 0.05, negative_threshold: float = -0.05) -> str:
    """The class of a VADER compound score (-1..1): at least ``positive_threshold`` positive, at most
    ``negative_threshold`` negative, neutral in between (VADER's own convention is 0.05 / -0.05)."""
    if compound >= positive_threshold:
        return POSITIVE
    if compound <= negative_threshold:
        return NEGATIVE
    return NEUTRAL


def vader_labels(
    texts: Iterable[str], positive_threshold: float = 0.05, negative_threshold: float = -0.05
) -> list[str]:
    """VADER's class for each text."""
    analyzer = SentimentIntensityAnalyzer()
    return [
        label_of_compound(analyzer.polarity_scores(text)["compound"], positive_threshold, negative_threshold)
        for text in texts
    ]
