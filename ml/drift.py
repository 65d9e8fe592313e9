"""Prediction drift of the sentiment model: the population stability index (PSI) of the scores a model version
gave one day's reviews, against the scores it gives its own training set.

Scores (``P(positive) - P(negative)``, from -1 to 1) fall into ``SCORE_BINS`` equal bins. The training set's
shares of them are kept with the model version in the registry (``REFERENCE_TAG``) when it is registered; the Spark
job counts a day's scores per bin with the same bin expression (``bin_of``'s rule) and ``psi`` compares the two::

    PSI = sum over bins of (actual share - expected share) * ln(actual share / expected share)

An empty bin counts as a share of ``EMPTY_SHARE`` on either side, so that the index stays finite."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

SCORE_BINS = 10
EMPTY_SHARE = 1e-4
REFERENCE_TAG = "score_reference"


def bin_of(score: float) -> int:
    """The bin of a score in [-1, 1]: ``floor((score + 1) / 2 * SCORE_BINS)``, with 1 in the last bin."""
    return min(math.floor((score + 1) / 2 * SCORE_BINS), SCORE_BINS - 1)


def shares(scores: Sequence[float] | np.ndarray) -> list[float]:
    """Each bin's share of ``scores``."""
    counts = [0] * SCORE_BINS
    for score in np.asarray(scores, dtype=float):
        counts[bin_of(float(score))] += 1
    total = sum(counts)
    if total == 0:
        raise ValueError("no scores to take shares of")
    return [count / total for count in counts]


def psi(expected: Sequence[float], actual_counts: Mapping[int, int]) -> float:
    """The PSI of the counts per bin ``actual_counts`` against the ``expected`` shares."""
    if len(expected) != SCORE_BINS:
        raise ValueError(f"expected {SCORE_BINS} reference shares, got {len(expected)}")
    total = sum(actual_counts.values())
    if total == 0:
        raise ValueError("no scores to compare")
    index = 0.0
    for bin_number, expected_share in enumerate(expected):
        actual = max(actual_counts.get(bin_number, 0) / total, EMPTY_SHARE)
        reference = max(expected_share, EMPTY_SHARE)
        index += (actual - reference) * math.log(actual / reference)
    return index


def reference_tag(reference: Sequence[float]) -> str:
    """The registry tag's value for the training set's shares."""
    return json.dumps({"bins": SCORE_BINS, "range": [-1, 1], "shares": [round(s, 6) for s in reference]})


def reference_of_tag(value: str) -> list[float]:
    """The shares kept in a ``REFERENCE_TAG``; ValueError when they were binned otherwise."""
    reference = json.loads(value)
    if reference.get("bins") != SCORE_BINS or len(reference.get("shares", ())) != SCORE_BINS:
        raise ValueError(f"the reference was binned into {reference.get('bins')} bins, not {SCORE_BINS}")
    return [float(s) for s in reference["shares"]]
