"""The model-quality benchmark on a small corpus: the split is the corpus's newest fifth, the baseline's macro-F1 is
VADER's on exactly those reviews (computed here from vaderSentiment and scikit-learn), the candidate is scored on
the same holdout, and the section of docs/benchmarks.md shows every run and the verdict per size."""

from __future__ import annotations

import pytest
from sklearn.metrics import f1_score
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from lakehouse.kafka.generator import read_reference
from lakehouse.kafka.generator.review_text import sample_reviews
from lakehouse.scripts import bench_report
from lakehouse.scripts.bench_model_quality import TARGET_MACRO_F1, bench_model_quality
from lakehouse.scripts.errors import BenchError

RUN = {
    "command": "python -m lakehouse.scripts.bench model_quality --quality-sizes 600",
    "started": "2026-12-06 09:00 UTC",
    "git_sha": "0123456789abcdef0123456789abcdef01234567",
    "machine": "2 cores (test), 1 GiB RAM, Linux",
}


def _vader_macro_f1(size: int, seed: int) -> float:
    held = sample_reviews(seed, size, read_reference("products"))[size - size // 5 :]
    analyzer = SentimentIntensityAnalyzer()
    compounds = [analyzer.polarity_scores(r.text)["compound"] for r in held]
    predicted = ["positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral" for c in compounds]
    truth = [r.label for r in held]
    return float(f1_score(truth, predicted, labels=["negative", "neutral", "positive"], average="macro"))


def test_a_small_corpus_is_split_scored_against_vader_and_reported() -> None:
    result = bench_model_quality([600], [4, 5])

    assert [(r["size"], r["seed"], r["training_rows"], r["holdout_rows"]) for r in result["runs"]] == [
        (600, 4, 480, 120),
        (600, 5, 480, 120),
    ]
    for run in result["runs"]:
        assert run["baseline_macro_f1"] == pytest.approx(_vader_macro_f1(600, run["seed"]), abs=1e-4)
        assert 0.0 < run["candidate_macro_f1"] <= 1.0
        assert set(run["candidate_f1"]) == {"negative", "neutral", "positive"}
    (size,) = result["per_size"]
    lowest = min(r["candidate_macro_f1"] for r in result["runs"])
    gains = [r["candidate_macro_f1"] - r["baseline_macro_f1"] for r in result["runs"]]
    assert size["lowest_candidate_macro_f1"] == lowest
    assert size["target_met"] == (lowest >= TARGET_MACRO_F1 and min(gains) >= 0.05)

    text = bench_report.render({"model_quality": {"run": RUN, "result": result}})
    section = text[text.index("## Model quality") :]
    assert "| 600 | 120 |" in section
    assert section.count("| 600 | 4 |") == 1 and section.count("| 600 | 5 |") == 1
    assert ("met |" if size["target_met"] else "**not met** |") in section


def test_no_size_or_no_seed_is_refused() -> None:
    with pytest.raises(BenchError, match="at least one corpus size and one seed"):
        bench_model_quality([], [1])
