"""The sentiment model's specification (config/ml/sentiment.yaml): the shipped file, every problem of a bad one at
once with its file and key, and the model name and experiment each environment gives MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.config.errors import ConfigError
from lakehouse.config.ml import sentiment_spec
from lakehouse.config.settings import load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_the_shipped_spec_holds_the_issues_targets() -> None:
    spec = sentiment_spec(CONFIG)

    assert spec.training_set.table == "review_training_set"
    assert spec.training_set.holdout_fraction == 0.2
    assert (spec.gate.min_gain_over_champion, spec.gate.min_gain_over_baseline) == (0.01, 0.05)
    assert (spec.baseline.positive_threshold, spec.baseline.negative_threshold) == (0.05, -0.05)
    assert spec.search.ngram_range == (1, 2) and spec.search.class_weights == (None, "balanced")


def test_every_problem_of_a_bad_spec_is_listed_with_its_key(tmp_path: Path) -> None:
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "sentiment.yaml").write_text(
        "training_set: {holdout_fraction: 1.5, table: Reviews}\n"
        "search: {c_values: [0, 1], class_weights: [weighted], cv_folds: 1, ngram_range: [2, 1]}\n"
        "baseline: {positive_threshold: -0.1, negative_threshold: 0.1}\n"
        "gate: {min_gain_over_champion: -0.01, surprise: 1}\n"
    )
    with pytest.raises(ConfigError) as error:
        sentiment_spec(tmp_path)

    where = str(tmp_path / "ml" / "sentiment.yaml")
    keys = {problem.removeprefix(f"{where}: ").split(":")[0] for problem in error.value.problems}
    # (pydantic also reports the tuple holding the bad class weight as a whole)
    assert keys - {"search.class_weights"} == {
        "training_set.holdout_fraction",
        "training_set.table",
        "search.class_weights.0",
        "search.cv_folds",
        "baseline",
        "gate.min_gain_over_champion",
        "gate.surprise",
    }
    # the search's own checks run once its fields are valid
    (tmp_path / "ml" / "sentiment.yaml").write_text("search: {c_values: [0, 1], ngram_range: [2, 1]}\n")
    with pytest.raises(ConfigError, match=r"search: Value error, ngram_range must be \[low, high\]"):
        sentiment_spec(tmp_path)


def test_a_missing_spec_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ml/sentiment.yaml: missing"):
        sentiment_spec(tmp_path)


def test_each_environment_names_the_model_and_its_experiment(tmp_path: Path) -> None:
    local = load_settings("local", environ={"LAKEHOUSE_HOME": str(tmp_path)}).mlflow
    assert (local.model_name, local.champion_alias, local.experiment) == (
        "lakehouse_sentiment",
        "champion",
        "lakehouse_sentiment",
    )
    moved = load_settings(
        "cluster",
        environ={
            "LAKEHOUSE_HOME": str(tmp_path),
            "LAKEHOUSE_MLFLOW_MODEL_NAME": "sentiment_t1",
            "LAKEHOUSE_MLFLOW_EXPERIMENT": "sentiment_t1_runs",
        },
    ).mlflow
    assert (moved.model_name, moved.experiment) == ("sentiment_t1", "sentiment_t1_runs")
