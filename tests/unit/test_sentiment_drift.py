"""The drift arithmetic of lakehouse.ml.drift against values worked out by hand and with numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lakehouse.ml import drift


def test_bins_split_minus_one_to_one_in_ten_with_one_in_the_last() -> None:
    assert [drift.bin_of(s) for s in (-1.0, -0.95, -0.79, -0.0001, 0.0, 0.19, 0.21, 0.99, 1.0)] == [
        0, 0, 1, 4, 5, 5, 6, 9, 9,
    ]  # fmt: skip


def test_shares_match_numpy_histogram() -> None:
    scores = np.random.default_rng(3).uniform(-1, 1, 5000)
    counts, _ = np.histogram(scores, bins=10, range=(-1, 1))
    assert drift.shares(scores) == pytest.approx(list(counts / counts.sum()))


def test_psi_of_identical_distributions_is_zero_and_grows_with_the_shift() -> None:
    reference = [0.1] * 10
    assert drift.psi(reference, dict.fromkeys(range(10), 7)) == pytest.approx(0.0)
    # half the mass moved from bins 0-4 to bins 5-9: by hand, 5 * (0.04 - 0.1) ln(0.4) + 5 * (0.16 - 0.1) ln(1.6)
    shifted = {b: 4 if b < 5 else 16 for b in range(10)}
    by_hand = 5 * (0.04 - 0.1) * math.log(0.4) + 5 * (0.16 - 0.1) * math.log(1.6)
    assert drift.psi(reference, shifted) == pytest.approx(by_hand)
    assert drift.psi(reference, {0: 100}) > drift.psi(reference, shifted) > 0


def test_empty_bins_count_as_a_tiny_share_so_the_index_stays_finite() -> None:
    reference = [0.5, 0.5] + [0.0] * 8
    value = drift.psi(reference, {9: 10})
    floor = 1e-4
    by_hand = 2 * (floor - 0.5) * math.log(floor / 0.5) + (1 - floor) * math.log(1 / floor)
    assert math.isfinite(value) and value == pytest.approx(by_hand)


def test_the_reference_round_trips_through_its_tag_and_refuses_other_binnings() -> None:
    shares = drift.shares([-0.9, -0.1, 0.3, 0.95])
    assert drift.reference_of_tag(drift.reference_tag(shares)) == pytest.approx(shares)
    with pytest.raises(ValueError, match="binned into 5 bins"):
        drift.reference_of_tag('{"bins": 5, "shares": [0.2, 0.2, 0.2, 0.2, 0.2]}')
    with pytest.raises(ValueError):
        drift.psi([0.5, 0.5], {0: 1})
    with pytest.raises(ValueError):
        drift.psi([0.1] * 10, {})
