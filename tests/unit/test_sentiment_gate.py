"""The promotion gate's rule (lakehouse.ml.gate.decide) and the VADER baseline it compares with: hand-made scores
and sentences, expected outcomes stated here."""

from __future__ import annotations

import pytest

from lakehouse.ml.baseline import label_of_compound, vader_labels
from lakehouse.ml.gate import decide

MARGINS = {"min_gain_over_champion": 0.01, "min_gain_over_baseline": 0.05}


def test_a_first_candidate_is_promoted_when_it_beats_the_baseline_by_its_margin() -> None:
    decision = decide(0.80, None, 0.60, **MARGINS)

    assert decision.promoted
    assert decision.reason == "promoted: macro-F1 0.8000, +0.2000 over the baseline's 0.6000, no champion yet"


def test_a_first_candidate_too_close_to_the_baseline_is_not_promoted() -> None:
    decision = decide(0.64, None, 0.60, **MARGINS)

    assert not decision.promoted
    assert decision.reason == ("not promoted: macro-F1 0.6400 is +0.0400 over the baseline's 0.6000, needs +0.0500")


def test_a_candidate_beating_the_champion_and_the_baseline_by_their_margins_is_promoted() -> None:
    decision = decide(0.85, 0.83, 0.60, **MARGINS)

    assert decision.promoted
    assert decision.reason.endswith("+0.0200 over the champion's 0.8300")


@pytest.mark.parametrize(
    ("candidate", "champion"),
    [(0.8378, 0.8378), (0.835, 0.8378), (0.845, 0.8378)],
    ids=["tie", "worse", "better-by-less-than-the-margin"],
)
def test_a_candidate_not_beating_the_champion_by_the_margin_is_not_promoted(candidate: float, champion: float) -> None:
    decision = decide(candidate, champion, 0.57, **MARGINS)

    assert not decision.promoted
    assert "over the champion's 0.8378, needs +0.0100" in decision.reason
    assert "baseline" not in decision.reason


def test_a_gain_of_exactly_the_margin_passes_despite_float_rounding() -> None:
    assert 0.57 - 0.56 < 0.01  # 0.00999999...: the tolerance lets it count as the 0.01 it is
    assert decide(0.57, 0.56, 0.50, **MARGINS).promoted
    assert not decide(0.5699, 0.56, 0.50, **MARGINS).promoted


def test_both_shortfalls_are_named() -> None:
    decision = decide(0.62, 0.70, 0.60, **MARGINS)

    assert not decision.promoted
    assert decision.reason == (
        "not promoted: macro-F1 0.6200 is +0.0200 over the baseline's 0.6000, needs +0.0500; "
        "macro-F1 0.6200 is -0.0800 over the champion's 0.7000, needs +0.0100"
    )


@pytest.mark.parametrize(
    ("compound", "label"),
    [(0.9, "positive"), (0.05, "positive"), (0.0499, "neutral"), (0.0, "neutral"), (-0.0499, "neutral"),
     (-0.05, "negative"), (-0.7, "negative")],
)  # fmt: skip
def test_vader_compound_thresholds(compound: float, label: str) -> None:
    assert label_of_compound(compound) == label


def test_vader_labels_clear_sentences_and_takes_other_thresholds() -> None:
    texts = ["I love it, absolutely wonderful!", "Terrible. It broke and I hate it.", "The box arrived on Tuesday."]

    assert vader_labels(texts) == ["positive", "negative", "neutral"]
    # with thresholds no compound reaches, everything is neutral
    assert vader_labels(texts, positive_threshold=1.01, negative_threshold=-1.01) == ["neutral"] * 3
