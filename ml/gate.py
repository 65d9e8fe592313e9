"""The promotion gate's rule, as a pure function: a candidate becomes the champion only if its holdout macro-F1
beats the lexicon baseline's and the current champion's (on the same holdout) each by at least its margin.

A gain equal to the margin passes; differences are compared to 1e-9, so that a float like 0.57 - 0.56
(0.0099999...) counts as the 0.01 it is. A candidate that scores what the champion scores (the same data retrained)
is therefore never promoted while the margin over the champion is above zero."""

from __future__ import annotations

from dataclasses import dataclass

TOLERANCE = 1e-9


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, and why, in one line naming the numbers compared."""

    promoted: bool
    reason: str


def decide(
    candidate: float,
    champion: float | None,
    baseline: float,
    min_gain_over_champion: float,
    min_gain_over_baseline: float,
) -> GateDecision:
    """The gate's decision from the holdout macro-F1 of the candidate, of the champion (None: there is none yet) and
    of the baseline, and the gains the candidate needs over each."""
    over_baseline = candidate - baseline
    problems = []
    if over_baseline < min_gain_over_baseline - TOLERANCE:
        problems.append(
            f"macro-F1 {candidate:.4f} is {over_baseline:+.4f} over the baseline's {baseline:.4f}, "
            f"needs +{min_gain_over_baseline:.4f}"
        )
    if champion is not None and candidate - champion < min_gain_over_champion - TOLERANCE:
        problems.append(
            f"macro-F1 {candidate:.4f} is {candidate - champion:+.4f} over the champion's {champion:.4f}, "
            f"needs +{min_gain_over_champion:.4f}"
        )
    if problems:
        return GateDecision(False, "not promoted: " + "; ".join(problems))
    versus = (
        "no champion yet" if champion is None else f"{candidate - champion:+.4f} over the champion's {champion:.4f}"
    )
    return GateDecision(
        True, f"promoted: macro-F1 {candidate:.4f}, {over_baseline:+.4f} over the baseline's {baseline:.4f}, {versus}"
    )
