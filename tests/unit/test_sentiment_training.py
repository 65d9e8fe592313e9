"""Training and evaluating the sentiment model (lakehouse.ml.training) on small seeded review sets: the same rows
and seed give the same model and metrics, the model's classes are the contract's, the holdout evaluation is
scikit-learn's macro-F1 of the most probable class, and training refuses sets that cannot train it."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from lakehouse.config.ml import SearchSpec, TrainingSetSpec
from lakehouse.kafka.generator import read_reference
from lakehouse.kafka.generator.review_text import ReviewWriter
from lakehouse.ml.errors import TrainingDataError
from lakehouse.ml.training import evaluate, model_input, model_requirements, train

LABELS = {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}
SEARCH = SearchSpec(c_values=(1.0, 10.0), class_weights=(None, "balanced"), cv_folds=3, random_state=7)


def reviews(seed: int, count: int) -> pd.DataFrame:
    """``count`` generated reviews (text and label) with ratings of the generator's mix, from one seed."""
    rng = random.Random(seed)
    writer = ReviewWriter(random.Random(seed + 1), read_reference("products"))
    products = [row["product_id"] for row in read_reference("products")]
    ratings = rng.choices((1, 2, 3, 4, 5), weights=(0.1, 0.1, 0.2, 0.3, 0.3), k=count)
    return pd.DataFrame(
        {
            "review_text": [writer.review(rng.choice(products), r).text for r in ratings],
            "label": [LABELS[r] for r in ratings],
        }
    )


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = reviews(11, 400)
    return rows.iloc[:300], rows.iloc[300:]


def test_the_same_rows_and_seed_give_the_same_model_and_metrics(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train_rows, holdout = data
    first, second = train(train_rows, holdout, SEARCH), train(train_rows, holdout, SEARCH)

    assert first.holdout == second.holdout
    assert (first.params, first.cv_macro_f1) == (second.params, second.cv_macro_f1)
    unseen = model_input(reviews(99, 50)["review_text"])
    np.testing.assert_array_equal(first.model.predict_proba(unseen), second.model.predict_proba(unseen))
    # the pipeline takes the texts as the stream's scoring (a Series) and the model server (a list) pass them
    texts = reviews(99, 50)["review_text"]
    np.testing.assert_array_equal(first.model.predict_proba(texts), first.model.predict_proba(unseen))
    np.testing.assert_array_equal(first.model.predict_proba(list(texts)), first.model.predict_proba(unseen))
    assert first.params["C"] in SEARCH.c_values and first.params["class_weight"] in SEARCH.class_weights


def test_the_holdout_is_scored_by_the_most_probable_class_in_contract_order(
    data: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train_rows, holdout = data
    trained = train(train_rows, holdout, SEARCH)

    assert list(trained.model.classes_) == ["negative", "neutral", "positive"]
    probabilities = trained.model.predict_proba(model_input(holdout["review_text"]))
    predicted = np.array(["negative", "neutral", "positive"])[probabilities.argmax(axis=1)]
    truth = list(holdout["label"])
    assert trained.holdout.rows == 100
    assert trained.holdout.macro_f1 == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert trained.holdout.accuracy == pytest.approx(float(np.mean(predicted == np.array(truth))))
    assert trained.holdout.f1["neutral"] == pytest.approx(
        f1_score(truth, predicted, labels=["neutral"], average=None)[0]
    )
    # the generated texts follow their ratings, with noise: learnable, but not perfectly
    assert 0.6 < trained.holdout.macro_f1 < 1.0
    assert set(trained.metrics()) == {
        "holdout_macro_f1",
        "holdout_accuracy",
        "holdout_f1_negative",
        "holdout_f1_neutral",
        "holdout_f1_positive",
        "cv_macro_f1",
        "training_seconds",
    }


def test_macro_f1_counts_every_class_even_one_never_predicted() -> None:
    # negative: 1 right of 2 true, 1 predicted -> P 1, R 0.5, F1 2/3; neutral: never predicted nor true -> 0;
    # positive: 2 predicted, 1 right, 1 true -> P 0.5, R 1, F1 2/3
    scored = evaluate(["negative", "negative", "positive"], ["negative", "positive", "positive"])

    assert scored.f1 == pytest.approx({"negative": 2 / 3, "neutral": 0.0, "positive": 2 / 3})
    assert scored.macro_f1 == pytest.approx(4 / 9)
    assert scored.accuracy == pytest.approx(2 / 3)
    assert scored.metrics("holdout")["holdout_f1_neutral"] == 0.0
    with pytest.raises(ValueError, match="as many predictions as labels"):
        evaluate(["negative"], [])


def test_training_refuses_too_few_rows_or_a_missing_class() -> None:
    from lakehouse.ml.training import check_training_data

    rows = reviews(3, 200)
    spec = TrainingSetSpec(min_training_rows=100, min_holdout_rows=30)
    check_training_data(rows.iloc[:150], rows.iloc[150:], spec, folds=3)

    no_neutral = rows[rows["label"] != "neutral"]
    with pytest.raises(TrainingDataError) as error:
        check_training_data(no_neutral.iloc[:20], no_neutral.iloc[20:30], spec, folds=3)
    message = str(error.value)
    assert "20 training rows, fewer than min_training_rows (100)" in message
    assert "{'neutral': 0}" in message
    assert "10 holdout rows, fewer than min_holdout_rows (30)" in message


def test_the_models_requirements_are_exact_pins_of_what_loads_it() -> None:
    from importlib.metadata import version

    assert model_requirements() == [
        f"scikit-learn=={version('scikit-learn')}",
        f"skops=={version('skops')}",
        f"numpy=={version('numpy')}",
        f"scipy=={version('scipy')}",
        f"pandas=={version('pandas')}",
    ]
