"""The promotion gate's decisions, kept in ``serving.ml_model_decisions`` (one row per candidate's MLflow run).

A row is written once: the first decision for a run stays (``record`` returns the stored one), so a gate that is
retried after a crash completes the decision it made instead of making another."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from datetime import datetime

import psycopg


@dataclass(frozen=True)
class ModelDecision:
    """One decision of the promotion gate and the numbers it compared (macro-F1 on the candidate's holdout)."""

    run_id: str
    model_name: str
    candidate_version: str
    champion_version_before: str | None
    candidate_macro_f1: float
    champion_macro_f1: float | None
    baseline_macro_f1: float
    min_gain_over_champion: float
    min_gain_over_baseline: float
    holdout_rows: int
    training_set_version: int
    promoted: bool
    reason: str
    decided_at: datetime | None = None


_COLUMNS = [f.name for f in fields(ModelDecision)]
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM serving.ml_model_decisions WHERE run_id = %s"


def find(dsn: str, run_id: str) -> ModelDecision | None:
    """The decision recorded for the run, if the gate decided on it."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(_SELECT, (run_id,)).fetchone()
    return ModelDecision(*row) if row else None


def record(dsn: str, decision: ModelDecision) -> ModelDecision:
    """Insert the decision unless one is recorded for its run already; returns the recorded one (``decided_at``
    set by the database)."""
    columns = _COLUMNS[:-1]
    with psycopg.connect(dsn) as conn:
        conn.execute(
            f"INSERT INTO serving.ml_model_decisions ({', '.join(columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT (run_id) DO NOTHING",
            astuple(decision)[: len(columns)],
        )
        row = conn.execute(_SELECT, (decision.run_id,)).fetchone()
    assert row is not None
    return ModelDecision(*row)


def history(dsn: str, model_name: str) -> list[ModelDecision]:
    """Every decision on the model, oldest first."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM serving.ml_model_decisions WHERE model_name = %s "
            "ORDER BY decided_at, run_id",
            (model_name,),
        ).fetchall()
    return [ModelDecision(*row) for row in rows]
