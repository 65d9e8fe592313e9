"""What every user of the sentiment model agrees on: its classes, how a rating becomes a label, and how the
model's class probabilities become a label and a score.

The registered model is a scikit-learn pipeline of the review texts (any sequence of strings: a list, a pandas Series,
a 1-D array) logged with ``pyfunc_predict_fn="predict_proba"``: it and its pyfunc ``predict`` (whose signature is a
1-D tensor of strings: a Series, an array or a one-column DataFrame) return one probability per class, in the order
of ``CLASSES`` (scikit-learn sorts its classes). ``TEXT_COLUMN`` is where Silver and the training set keep the
text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CLASSES = ("negative", "neutral", "positive")
TEXT_COLUMN = "review_text"


def label_of_rating(rating: int) -> str:
    """The sentiment label a review's rating stands for: 1-2 negative, 3 neutral, 4-5 positive."""
    if rating in (1, 2):
        return "negative"
    if rating == 3:
        return "neutral"
    if rating in (4, 5):
        return "positive"
    raise ValueError(f"a rating is 1 to 5, not {rating!r}")


def labels_and_scores(probabilities: np.ndarray | Sequence[Sequence[float]]) -> tuple[list[str], list[float]]:
    """Per row of class probabilities (columns in ``CLASSES`` order): the most probable label, and the score
    P(positive) - P(negative), from -1 (surely negative) to 1 (surely positive)."""
    matrix = np.asarray(probabilities, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] != len(CLASSES):
        raise ValueError(f"expected one column per class {CLASSES}, got shape {matrix.shape}")
    labels = [CLASSES[i] for i in matrix.argmax(axis=1)]
    scores = (matrix[:, CLASSES.index("positive")] - matrix[:, CLASSES.index("negative")]).round(6).tolist()
    return labels, scores
