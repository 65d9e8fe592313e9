"""Training and evaluation of the sentiment model, with scikit-learn only (no Spark, no MLflow): the Spark job
hands in the training set's two parts as pandas frames and logs what comes back.

The model is a pipeline of TF-IDF over word n-grams of the review text and a logistic regression. Its C and
class_weight are chosen by stratified k-fold cross-validation (macro-F1) on the training part only; the holdout
is touched once, to evaluate the chosen model. The same rows in the same order with the same ``random_state``
give the same model and the same metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from lakehouse.config.ml import SearchSpec, TrainingSetSpec
from lakehouse.ml import drift
from lakehouse.ml.errors import TrainingDataError
from lakehouse.ml.sentiment import CLASSES, TEXT_COLUMN, labels_and_scores

LABEL_COLUMN = "label"
# what loading the logged model needs, pinned to the versions that trained it (mlflow adds its own pin); naming
# them spares mlflow.sklearn.log_model a 10-18 s inference of the requirements in a subprocess
MODEL_REQUIREMENTS = ("scikit-learn", "skops", "numpy", "scipy", "pandas")


@dataclass(frozen=True)
class Evaluation:
    """How well predicted labels match the true ones: macro-F1 over ``CLASSES``, accuracy, F1 of each class."""

    rows: int
    macro_f1: float
    accuracy: float
    f1: dict[str, float] = field(default_factory=dict)

    def metrics(self, prefix: str = "holdout") -> dict[str, float]:
        """The evaluation as MLflow metrics: ``<prefix>_macro_f1``, ``<prefix>_accuracy``, ``<prefix>_f1_<class>``."""
        return {
            f"{prefix}_macro_f1": self.macro_f1,
            f"{prefix}_accuracy": self.accuracy,
            **{f"{prefix}_f1_{label}": value for label, value in self.f1.items()},
        }


def evaluate(true_labels: Sequence[str], predicted_labels: Sequence[str]) -> Evaluation:
    """Macro-F1 (the unweighted mean of the classes' F1, every class of ``CLASSES`` counted even when absent: its
    F1 is then 0), accuracy and per-class F1."""
    truth, predicted = list(true_labels), list(predicted_labels)
    if len(truth) != len(predicted) or not truth:
        raise ValueError(f"need as many predictions as labels, and some: {len(predicted)} for {len(truth)}")
    per_class = f1_score(truth, predicted, labels=list(CLASSES), average=None, zero_division=0.0)
    return Evaluation(
        rows=len(truth),
        macro_f1=float(np.mean(per_class)),
        accuracy=float(accuracy_score(truth, predicted)),
        f1={label: float(value) for label, value in zip(CLASSES, per_class, strict=True)},
    )


def evaluate_probabilities(true_labels: Sequence[str], probabilities: Any) -> Evaluation:
    """``evaluate`` of the most probable class of each row of class probabilities (columns in ``CLASSES`` order,
    as the registered model's pyfunc returns them)."""
    predicted, _ = labels_and_scores(np.asarray(probabilities))
    return evaluate(true_labels, predicted)


def model_input(texts: Sequence[str] | pd.Series) -> np.ndarray:
    """The model's input: the texts as a 1-D array of strings (what its signature says; the pipeline itself takes
    any sequence of strings, as the stream's scoring and the model server pass them)."""
    return np.asarray(list(texts), dtype=object)


def pipeline(search: SearchSpec) -> Pipeline:
    """The untrained pipeline: TF-IDF of the texts' word n-grams, then a logistic regression."""
    vectorizer = TfidfVectorizer(
        ngram_range=search.ngram_range, min_df=search.min_df, sublinear_tf=search.sublinear_tf, lowercase=True
    )
    return Pipeline(
        [
            ("tfidf", vectorizer),
            ("classifier", LogisticRegression(max_iter=search.max_iter, random_state=search.random_state)),
        ]
    )


def check_training_data(train: pd.DataFrame, holdout: pd.DataFrame, spec: TrainingSetSpec, folds: int) -> None:
    """TrainingDataError unless the training part is large enough and has every class at least ``folds`` times
    (each fold of the search needs them all), and the holdout has ``spec.min_holdout_rows`` rows."""
    problems = []
    if len(train) < spec.min_training_rows:
        problems.append(f"{len(train)} training rows, fewer than min_training_rows ({spec.min_training_rows})")
    counts = train[LABEL_COLUMN].value_counts().to_dict() if len(train) else {}
    scarce = {label: int(counts.get(label, 0)) for label in CLASSES if counts.get(label, 0) < folds}
    if scarce:
        problems.append(f"classes with fewer training rows than the {folds} cross-validation folds: {scarce}")
    if len(holdout) < spec.min_holdout_rows:
        problems.append(f"{len(holdout)} holdout rows, fewer than min_holdout_rows ({spec.min_holdout_rows})")
    if problems:
        raise TrainingDataError(
            f"the training set cannot train the sentiment model: {'; '.join(problems)}; wait for more reviews or "
            "choose a later end date"
        )


@dataclass(frozen=True)
class TrainedModel:
    """The chosen pipeline (refit on the whole training part), its hyperparameters, its cross-validated macro-F1 and
    its evaluation on the holdout."""

    model: Pipeline
    params: dict[str, Any]
    cv_macro_f1: float
    holdout: Evaluation
    train_rows: int
    seconds: float
    # the holdout's shares of the score bins (lakehouse.ml.drift): scores of reviews the model has not seen, as the
    # stream's are
    score_reference: list[float]

    def metrics(self) -> dict[str, float]:
        """Every metric worth logging: the holdout's, the cross-validation's and the training time."""
        return {**self.holdout.metrics(), "cv_macro_f1": self.cv_macro_f1, "training_seconds": self.seconds}


def train(train_rows: pd.DataFrame, holdout_rows: pd.DataFrame, search: SearchSpec) -> TrainedModel:
    """Search C x class_weight by stratified k-fold cross-validation on ``train_rows`` (columns ``TEXT_COLUMN``
    and ``LABEL_COLUMN``, in a fixed order: the folds follow it), refit the best on all of them, and evaluate it
    on ``holdout_rows``."""
    started = time.perf_counter()
    grid = {
        "classifier__C": list(search.c_values),
        "classifier__class_weight": list(search.class_weights),
    }
    folds = StratifiedKFold(n_splits=search.cv_folds, shuffle=True, random_state=search.random_state)
    searched = GridSearchCV(pipeline(search), grid, scoring="f1_macro", cv=folds, refit=True, n_jobs=None)
    searched.fit(model_input(train_rows[TEXT_COLUMN]), list(train_rows[LABEL_COLUMN]))
    model: Pipeline = searched.best_estimator_
    if tuple(model.classes_) != CLASSES:
        raise TrainingDataError(f"the model learned the classes {list(model.classes_)}, not {list(CLASSES)}")
    probabilities = model.predict_proba(model_input(holdout_rows[TEXT_COLUMN]))
    holdout = evaluate_probabilities(list(holdout_rows[LABEL_COLUMN]), probabilities)
    return TrainedModel(
        model=model,
        params={
            "C": searched.best_params_["classifier__C"],
            "class_weight": searched.best_params_["classifier__class_weight"],
        },
        cv_macro_f1=float(searched.best_score_),
        holdout=holdout,
        train_rows=len(train_rows),
        seconds=round(time.perf_counter() - started, 3),
        score_reference=drift.shares(labels_and_scores(probabilities)[1]),
    )


def model_requirements() -> list[str]:
    """Exact pins of what loading the model needs, as installed here."""
    return [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]
