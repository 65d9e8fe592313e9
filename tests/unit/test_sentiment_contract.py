"""The model's shared contract: labels from ratings, and labels and scores from class probabilities."""

from __future__ import annotations

import pytest

from lakehouse.ml.sentiment import CLASSES, label_of_rating, labels_and_scores


def test_ratings_map_to_labels_and_nothing_else_does() -> None:
    assert [label_of_rating(r) for r in (1, 2, 3, 4, 5)] == ["negative", "negative", "neutral", "positive", "positive"]
    for bad in (0, 6, None, "5"):
        with pytest.raises(ValueError, match="a rating is 1 to 5"):
            label_of_rating(bad)  # type: ignore[arg-type]


def test_probabilities_give_the_most_probable_label_and_positive_minus_negative() -> None:
    assert CLASSES == ("negative", "neutral", "positive")
    labels, scores = labels_and_scores([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    assert labels == ["negative", "positive", "neutral"]
    assert scores == pytest.approx([-0.6, 0.5, 0.1])
    with pytest.raises(ValueError, match="one column per class"):
        labels_and_scores([[0.5, 0.5]])
