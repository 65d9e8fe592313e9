"""The sentiment model's quality for ``make bench`` (issue 17: holdout macro-F1 at least 0.85, and at least the
VADER baseline's plus 0.05), side by side with the baseline on the same holdout.

Per corpus size and seed: that many reviews from the generator's review writer (``sample_reviews``: the texts and
the rating mix of the stream's review events), labelled from their ratings; the corpus order stands for time, so
the newest ``training_set.holdout_fraction`` of them is the holdout, as the training-set job splits by
``event_timestamp``. The candidate is the training job's own ``lakehouse.ml.training.train`` with the search of
``config/ml/sentiment.yaml`` (cross-validated on the training part only); the baseline is VADER with the
configured thresholds. Both macro-F1s are computed here with scikit-learn's ``f1_score`` from each side's labels,
not taken from the training module, and the candidate's must equal the one the training run reports.

    python -m lakehouse.scripts.bench model_quality
    python -m lakehouse.scripts.bench model_quality --quality-sizes 2000,10000 --quality-seeds 1,2
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from lakehouse.scripts.errors import BenchError

# targets of issue 17 (the table of targets)
TARGET_MACRO_F1 = 0.85
TARGET_GAIN_OVER_BASELINE = 0.05
DEFAULT_SIZES = (2_000, 10_000, 40_000)
DEFAULT_SEEDS = (1, 2, 3)


def quality_run(size: int, seed: int) -> dict[str, Any]:
    """Train and evaluate the candidate and the baseline on one generated corpus."""
    import pandas as pd
    from sklearn.metrics import f1_score

    from lakehouse.config.ml import sentiment_spec
    from lakehouse.kafka.generator import read_reference
    from lakehouse.kafka.generator.review_text import sample_reviews
    from lakehouse.ml.baseline import vader_labels
    from lakehouse.ml.sentiment import CLASSES, TEXT_COLUMN
    from lakehouse.ml.training import LABEL_COLUMN, model_input, train

    spec = sentiment_spec()
    reviews = sample_reviews(seed, size, read_reference("products"))
    rows = pd.DataFrame({TEXT_COLUMN: [r.text for r in reviews], LABEL_COLUMN: [r.label for r in reviews]})
    first_holdout = size - round(size * spec.training_set.holdout_fraction)
    training, holdout = rows.iloc[:first_holdout], rows.iloc[first_holdout:].reset_index(drop=True)
    truth = list(holdout[LABEL_COLUMN])

    def macro_f1(predicted: Sequence[str]) -> float:
        return float(f1_score(truth, list(predicted), labels=list(CLASSES), average="macro", zero_division=0.0))

    trained = train(training, holdout, spec.search)
    candidate = macro_f1([str(label) for label in trained.model.predict(model_input(holdout[TEXT_COLUMN]))])
    if abs(candidate - trained.holdout.macro_f1) > 1e-9:
        raise BenchError(
            f"the candidate's holdout macro-F1 is {candidate:.6f} here but {trained.holdout.macro_f1:.6f} in its "
            f"training run (size {size}, seed {seed})"
        )
    started = time.perf_counter()
    baseline_labels = vader_labels(
        holdout[TEXT_COLUMN], spec.baseline.positive_threshold, spec.baseline.negative_threshold
    )
    baseline_seconds = time.perf_counter() - started
    baseline = macro_f1(baseline_labels)
    # the generator writes some reviews in another label's words, or in none: their text does not tell their label
    held = reviews[first_holdout:]
    off_text = sum(1 for r in held if r.tone != r.label) / len(held)
    return {
        "size": size,
        "seed": seed,
        "training_rows": len(training),
        "holdout_rows": len(holdout),
        "candidate_macro_f1": round(candidate, 4),
        "candidate_f1": {label: round(value, 4) for label, value in trained.holdout.f1.items()},
        "cv_macro_f1": round(trained.cv_macro_f1, 4),
        "params": trained.params,
        "training_seconds": trained.seconds,
        "baseline_macro_f1": round(baseline, 4),
        "baseline_seconds": round(baseline_seconds, 3),
        "holdout_off_text_share": round(off_text, 4),
    }


def bench_model_quality(sizes: Sequence[int], seeds: Sequence[int]) -> dict[str, Any]:
    """Every size with every seed; per size, the median of the seeds and whether the targets are met by every
    seed."""
    if not sizes or not seeds:
        raise BenchError("model_quality needs at least one corpus size and one seed")
    runs = []
    for size in sizes:
        for seed in seeds:
            print(f"  {size:,} reviews, seed {seed}", flush=True)
            runs.append(quality_run(size, seed))
    per_size = []
    for size in sizes:
        of_size = [r for r in runs if r["size"] == size]
        candidate = [r["candidate_macro_f1"] for r in of_size]
        gains = [r["candidate_macro_f1"] - r["baseline_macro_f1"] for r in of_size]
        per_size.append(
            {
                "size": size,
                "candidate_macro_f1": statistics.median(candidate),
                "baseline_macro_f1": statistics.median(r["baseline_macro_f1"] for r in of_size),
                "lowest_candidate_macro_f1": min(candidate),
                "lowest_gain": round(min(gains), 4),
                "target_met": min(candidate) >= TARGET_MACRO_F1 and min(gains) >= TARGET_GAIN_OVER_BASELINE,
            }
        )
    return {"sizes": list(sizes), "seeds": list(seeds), "runs": runs, "per_size": per_size}


def model_quality_section(entry: dict[str, Any] | None, run_line: Callable[[dict[str, Any]], str]) -> list[str]:
    """The section of docs/benchmarks.md (nothing before a first run)."""
    if entry is None:
        return []
    result = entry["result"]
    seeds = ", ".join(str(s) for s in result["seeds"])
    lines = [
        "",
        "## Model quality: the sentiment model against the VADER baseline",
        "",
        run_line(entry["run"]),
        "",
        f"Reproduce: `python -m lakehouse.scripts.bench model_quality` (this section alone; `--quality-sizes` and "
        f"`--quality-seeds` choose the corpora). Per corpus size, seeds {seeds}: that many reviews from the "
        "generator's review writer (`sample_reviews`, the stream's review texts and rating mix), labelled from their "
        "ratings; the newest fifth of the corpus is the holdout (`training_set.holdout_fraction`). The candidate is "
        "the training job's `train` with the search of `config/ml/sentiment.yaml`, cross-validated on the training "
        "part only; the baseline is VADER with the configured thresholds. Macro-F1 on the holdout, from scikit-learn's "
        "`f1_score` of each side's labels.",
        "",
        "| reviews | holdout | candidate macro-F1, median (lowest) | VADER macro-F1, median | lowest gain over "
        f"VADER | target: >= {TARGET_MACRO_F1} and >= VADER + {TARGET_GAIN_OVER_BASELINE} for every seed |",
        "|---|---|---|---|---|---|",
    ]
    for size in result["per_size"]:
        holdout = next(r["holdout_rows"] for r in result["runs"] if r["size"] == size["size"])
        lines.append(
            f"| {size['size']:,} | {holdout:,} | **{size['candidate_macro_f1']:.3f}** "
            f"({size['lowest_candidate_macro_f1']:.3f}) | {size['baseline_macro_f1']:.3f} | {size['lowest_gain']:+.3f} "
            f"| {'met' if size['target_met'] else '**not met**'} |"
        )
    lines += [
        "",
        "Every run:",
        "",
        "| reviews | seed | candidate macro-F1 | F1 negative / neutral / positive | cross-validated | C, class "
        "weight | training s | VADER macro-F1 | holdout written off its label |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        f1 = run["candidate_f1"]
        lines.append(
            f"| {run['size']:,} | {run['seed']} | {run['candidate_macro_f1']:.3f} | "
            f"{f1['negative']:.3f} / {f1['neutral']:.3f} / {f1['positive']:.3f} | {run['cv_macro_f1']:.3f} | "
            f"{run['params']['C']:g}, {run['params']['class_weight'] or 'none'} | {run['training_seconds']:.1f} | "
            f"{run['baseline_macro_f1']:.3f} | {run['holdout_off_text_share']:.1%} |"
        )
    lines += [
        "",
        "*Holdout written off its label*: the share of holdout reviews the generator wrote in the words of another "
        "label, or in no sentiment at all (its `off_label` and `ambiguous` noise). Their text does not tell their "
        "label; a model can only learn which label writes such text most often.",
    ]
    return lines
