"""The promotion gate, end to end: evaluate the candidate, the current champion and the lexicon baseline on the
candidate's holdout, decide (``lakehouse.ml.gate.decide``), record the decision in PostgreSQL, and move the
champion alias when the candidate won.

The order makes a retry safe: the decision is recorded before the alias moves, and a gate that finds a decision
recorded for its run only completes it (moves the alias if it must and still can) instead of deciding again, so
the candidate a retry compares is never a champion it promoted itself."""

from __future__ import annotations

import logging

import pandas as pd
from mlflow import MlflowClient

from lakehouse.config.ml import SentimentSpec
from lakehouse.config.settings import Settings
from lakehouse.ml import registry
from lakehouse.ml.baseline import vader_labels
from lakehouse.ml.gate import decide
from lakehouse.ml.registry import Candidate
from lakehouse.ml.sentiment import TEXT_COLUMN
from lakehouse.ml.training import LABEL_COLUMN, evaluate, evaluate_probabilities
from lakehouse.postgres import ml_decisions
from lakehouse.postgres.ml_decisions import ModelDecision

log = logging.getLogger(__name__)


def promote(
    settings: Settings, spec: SentimentSpec, candidate: Candidate, holdout: pd.DataFrame, dsn: str
) -> ModelDecision:
    """Run the gate on ``candidate`` with ``holdout`` (its training set's holdout rows: ``TEXT_COLUMN`` and
    ``LABEL_COLUMN``), record the decision in ``serving.ml_model_decisions`` of ``dsn`` and apply it."""
    mlflow_settings = settings.mlflow
    client = registry.connect(mlflow_settings)
    decision = ml_decisions.find(dsn, candidate.run_id)
    if decision is not None:
        log.info("the gate decided on run %s already (%s): completing it", candidate.run_id, decision.reason)
    else:
        decision = ml_decisions.record(dsn, _decide(settings, spec, candidate, holdout, client))
    if decision.promoted:
        registry.move_champion(client, mlflow_settings, decision.candidate_version, decision.champion_version_before)
    metrics = {"gate_candidate_macro_f1": decision.candidate_macro_f1, "baseline_macro_f1": decision.baseline_macro_f1}
    if decision.champion_macro_f1 is not None:
        metrics["champion_macro_f1"] = decision.champion_macro_f1
    verdict = "promoted" if decision.promoted else "rejected"
    registry.record_gate(
        client,
        mlflow_settings,
        candidate,
        metrics,
        {registry.GATE_TAG: verdict, registry.GATE_REASON_TAG: decision.reason},
    )
    log.info("gate on %s version %s: %s", mlflow_settings.model_name, candidate.version, decision.reason)
    return decision


def _decide(
    settings: Settings, spec: SentimentSpec, candidate: Candidate, holdout: pd.DataFrame, client: MlflowClient
) -> ModelDecision:
    mlflow_settings = settings.mlflow
    texts, labels = list(holdout[TEXT_COLUMN]), list(holdout[LABEL_COLUMN])
    scored = evaluate_probabilities(labels, registry.class_probabilities(mlflow_settings, candidate.version, texts))
    if abs(scored.macro_f1 - candidate.holdout_macro_f1) > 1e-9:
        log.warning(
            "version %s scores macro-F1 %.6f on the holdout, but its run logged %.6f: is this its holdout?",
            candidate.version,
            scored.macro_f1,
            candidate.holdout_macro_f1,
        )
    champion = registry.champion_version(client, mlflow_settings)
    champion_f1 = None
    if champion is not None:
        probabilities = registry.class_probabilities(mlflow_settings, champion, texts)
        champion_f1 = evaluate_probabilities(labels, probabilities).macro_f1
    baseline = spec.baseline
    baseline_f1 = evaluate(
        labels, vader_labels(texts, baseline.positive_threshold, baseline.negative_threshold)
    ).macro_f1
    gate = spec.gate
    verdict = decide(
        scored.macro_f1, champion_f1, baseline_f1, gate.min_gain_over_champion, gate.min_gain_over_baseline
    )
    return ModelDecision(
        run_id=candidate.run_id,
        model_name=mlflow_settings.model_name,
        candidate_version=candidate.version,
        champion_version_before=champion,
        candidate_macro_f1=scored.macro_f1,
        champion_macro_f1=champion_f1,
        baseline_macro_f1=baseline_f1,
        min_gain_over_champion=gate.min_gain_over_champion,
        min_gain_over_baseline=gate.min_gain_over_baseline,
        holdout_rows=len(holdout),
        training_set_version=candidate.training_set_version,
        promoted=verdict.promoted,
        reason=verdict.reason,
    )
