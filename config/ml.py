"""The sentiment model's specification: ``config/ml/sentiment.yaml`` (training set, hyperparameter search, lexicon
baseline, promotion gate, drift monitoring), validated up front; every problem is reported at once with its file and
key.

Where runs are tracked and under which name the model is registered depend on the environment instead
(``Settings.mlflow``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lakehouse.config.errors import ConfigError
from lakehouse.config.settings import config_dir


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingSetSpec(_Model):
    """The Gold table of labelled reviews and its time-based holdout: the newest ``holdout_fraction`` of the
    reviews, ordered by event time then event id."""

    table: str = Field(default="review_training_set", pattern=r"^[a-z][a-z0-9_]*$")
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    min_training_rows: int = Field(default=100, ge=1)
    min_holdout_rows: int = Field(default=30, ge=1)


class SearchSpec(_Model):
    """TF-IDF (word n-grams) + logistic regression, with C and class_weight chosen by stratified k-fold
    cross-validation on the training part."""

    ngram_range: tuple[int, int] = (1, 2)
    min_df: int = Field(default=2, ge=1)
    sublinear_tf: bool = True
    c_values: tuple[float, ...] = Field(default=(1.0, 3.0, 10.0), min_length=1)
    class_weights: tuple[Literal["balanced"] | None, ...] = Field(default=(None, "balanced"), min_length=1)
    cv_folds: int = Field(default=3, ge=2)
    random_state: int = 42
    max_iter: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _sane_values(self) -> SearchSpec:
        low, high = self.ngram_range
        if not 1 <= low <= high:
            raise ValueError(f"ngram_range must be [low, high] with 1 <= low <= high, got {list(self.ngram_range)}")
        if any(c <= 0 for c in self.c_values):
            raise ValueError(f"c_values must all be > 0, got {list(self.c_values)}")
        return self


class BaselineSpec(_Model):
    """The lexicon baseline (VADER): compound >= ``positive_threshold`` is positive, <= ``negative_threshold``
    negative, anything between neutral."""

    positive_threshold: float = Field(default=0.05, ge=-1, le=1)
    negative_threshold: float = Field(default=-0.05, ge=-1, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> BaselineSpec:
        if self.negative_threshold >= self.positive_threshold:
            raise ValueError(
                f"negative_threshold ({self.negative_threshold}) must be below positive_threshold "
                f"({self.positive_threshold})"
            )
        return self


class GateSpec(_Model):
    """How much better than the champion and than the baseline (holdout macro-F1) a candidate must be to be
    promoted."""

    min_gain_over_champion: float = Field(default=0.01, ge=0, le=1)
    min_gain_over_baseline: float = Field(default=0.05, ge=0, le=1)


class MonitoringSpec(_Model):
    """Prediction drift: the population stability index (PSI) of a day's scores of one model version against the
    scores of its training set. A day with at least ``min_reviews`` scored reviews whose PSI reaches
    ``psi_alert_threshold`` raises an alert (0.1-0.2 is commonly read as a moderate shift, above 0.2 as a large
    one)."""

    psi_alert_threshold: float = Field(default=0.2, gt=0)
    min_reviews: int = Field(default=50, ge=1)


class SentimentSpec(_Model):
    """Everything ``config/ml/sentiment.yaml`` says."""

    training_set: TrainingSetSpec = Field(default_factory=TrainingSetSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    baseline: BaselineSpec = Field(default_factory=BaselineSpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    source_file: Path = Path()


def sentiment_spec(root: Path | None = None) -> SentimentSpec:
    """``<config>/ml/sentiment.yaml``, validated; ConfigError listing every problem with its file and key."""
    path = (root or config_dir()) / "ml" / "sentiment.yaml"
    if not path.is_file():
        raise ConfigError([f"{path}: missing: the sentiment model's specification (training set, search, gate)"])
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping of keys, got {type(raw).__name__}"])
    try:
        return SentimentSpec.model_validate({**raw, "source_file": path})
    except ValidationError as exc:
        raise ConfigError(
            [f"{path}: {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
        ) from exc
