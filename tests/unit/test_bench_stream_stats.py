"""The streaming benchmark's arithmetic: backlog slope, the sustained rule, percentiles, commit times read from a
Delta log, CPU steal and the micro-batch statistics. Expected values are worked out by hand."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lakehouse.scripts.bench_meta import config_hash
from lakehouse.scripts.bench_stream_run import batch_stats, combined_outcomes, producer_share
from lakehouse.scripts.bench_stream_stats import (
    Sample,
    commit_times,
    cpu_times,
    judge_step,
    next_step_worth_running,
    percentile,
    slope,
    steal_share,
    sustained_rate,
)


def test_slope_of_points_on_a_line_is_its_gradient() -> None:
    assert slope([(0, 2), (1, 5), (2, 8), (10, 32)]) == pytest.approx(3.0)


def test_slope_of_scattered_points() -> None:
    # x mean 1, y mean 2; sum (x - 1)(y - 2) = (-1)(-1) + 0 + (1)(1) = 2; sum (x - 1)^2 = 2
    assert slope([(0, 1), (1, 3), (2, 2)]) == pytest.approx(0.5)


def test_slope_needs_two_distinct_x() -> None:
    assert slope([]) == 0.0
    assert slope([(1, 5)]) == 0.0
    assert slope([(1, 5), (1, 9)]) == 0.0


def _samples(rate_in: float, rate_out: float, lag: int, until: float = 100.0, every: float = 2.0) -> list[Sample]:
    """Samples every ``every`` s from 0 to ``until``: end offsets grow at ``rate_in``, processed at ``rate_out``
    behind a constant ``lag``."""
    points = []
    t = 0.0
    while t <= until:
        end = int(rate_in * t) + lag
        points.append(Sample(t, end, int(rate_out * t)))
        t += every
    return points


def test_a_step_the_stream_keeps_up_with_is_sustained() -> None:
    verdict = judge_step(_samples(1000, 1000, lag=5000), rate=1000, start=0, end=100)

    assert verdict.sustained
    assert verdict.producer_kept_up
    assert verdict.gap_slope == pytest.approx(0.0, abs=1e-6)
    assert verdict.input_rate == pytest.approx(1000.0)
    assert verdict.gap_end == 5000
    # second half: samples at 50, 52, ..., 100
    assert verdict.samples == 26


def test_a_backlog_growing_faster_than_the_tolerance_is_not_sustained() -> None:
    # the backlog grows 1000 - 970 = 30 events/s, above 2% of 1000 = 20
    verdict = judge_step(_samples(1000, 970, lag=0), rate=1000, start=0, end=100)

    assert verdict.producer_kept_up
    assert verdict.gap_slope == pytest.approx(30.0, abs=0.1)
    assert not verdict.sustained


def test_a_backlog_growing_within_the_tolerance_is_sustained() -> None:
    # 1000 - 990 = 10 events/s, within 20
    assert judge_step(_samples(1000, 990, lag=0), rate=1000, start=0, end=100).sustained


def test_producers_that_fall_short_of_the_rate_fail_the_step() -> None:
    # 970 events/s into Kafka is 97% of 1000, below the 98% the producers must reach
    verdict = judge_step(_samples(970, 970, lag=0), rate=1000, start=0, end=100)

    assert not verdict.producer_kept_up
    assert not verdict.sustained
    assert verdict.input_rate == pytest.approx(970.0, abs=0.1)


def test_only_the_second_half_of_the_step_is_judged() -> None:
    # the backlog grows 500 events/s for 50 s (a slow start), then the stream finishes 1000 events/s
    samples = [Sample(t, 1000 * t, 500 * t if t <= 50 else 25_000 + 1000 * (t - 50)) for t in range(0, 101, 2)]

    verdict = judge_step(samples, rate=1000, start=0, end=100)

    assert verdict.sustained
    assert verdict.gap_end == 25_000


def test_the_sustained_rate_is_the_highest_sustained_step() -> None:
    kept = judge_step(_samples(1000, 1000, lag=0), rate=1000, start=0, end=100)
    lost = judge_step(_samples(2000, 1500, lag=0), rate=2000, start=0, end=100)

    assert sustained_rate([kept, lost]) == 1000
    assert sustained_rate([lost]) is None


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([4, 1, 3, 2], 0.5) == pytest.approx(2.5)
    # position 0.95 * 3 = 2.85: 3 + 0.85 * (4 - 3)
    assert percentile([4, 1, 3, 2], 0.95) == pytest.approx(3.85)
    assert percentile([7], 0.99) == 7
    assert math.isnan(percentile([], 0.5))


def _commit(timestamp: int, metadata: object, in_commit: int | None = None) -> str:
    info: dict[str, object] = {"timestamp": timestamp, "operation": "WRITE"}
    if metadata is not None:
        info["userMetadata"] = metadata if isinstance(metadata, str) else json.dumps(metadata)
    if in_commit is not None:
        info["inCommitTimestamp"] = in_commit
    add = json.dumps({"add": {"path": "part-0.parquet", "size": 10}})
    return add + "\n" + json.dumps({"commitInfo": info}) + "\n"


def test_commit_times_maps_each_stream_batch_to_its_commit() -> None:
    files = [
        _commit(1_000, None),  # the prefill: no userMetadata
        _commit(2_000, {"query": "stream_orders", "app_id": "a1", "batch_id": 0}),
        _commit(3_000, {"query": "stream_orders", "app_id": "a1", "batch_id": 1}, in_commit=3_500),
        _commit(4_000, "not json"),
        _commit(5_000, {"query": "stream_device_metrics", "app_id": "b2", "batch_id": 7}),
    ]

    assert commit_times(files) == {"a1:0": 2_000, "a1:1": 3_500, "b2:7": 5_000}
    assert commit_times(files, queries=["stream_device_metrics"]) == {"b2:7": 5_000}


def test_cpu_steal_share_between_two_readings() -> None:
    before = cpu_times("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 50 0 25 400 5 0 0 20 0 0\n")
    after = cpu_times("cpu  160 0 70 900 10 0 0 60 0 0\ncpu0 80 0 35 450 5 0 0 30 0 0\n")

    assert before == [100, 0, 50, 800, 10, 0, 0, 40]
    # deltas: user 60, system 20, idle 100, steal 20: 20 / 200
    assert steal_share(before, after) == pytest.approx(0.1)


def test_config_hash_follows_yaml_and_json_only(tmp_path: Path) -> None:
    (tmp_path / "event_types").mkdir()
    (tmp_path / "event_types" / "a.yaml").write_text("name: a\n")
    (tmp_path / "contract.json").write_text("{}")
    first = config_hash(tmp_path)
    (tmp_path / "specs.py").write_text("x = 1\n")

    assert config_hash(tmp_path) == first
    (tmp_path / "event_types" / "a.yaml").write_text("name: b\n")
    assert config_hash(tmp_path) != first


def test_batch_stats_of_the_batches_in_the_window() -> None:
    def started(second: int) -> datetime:
        return datetime.fromtimestamp(second, UTC)

    batches = [
        {"app_id": "a", "batch_id": 1, "started_at": started(100), "processing_ms": 4000, "input_rows": 300},
        {"app_id": "a", "batch_id": 2, "started_at": started(104), "processing_ms": 6000, "input_rows": 500},
        {"app_id": "b", "batch_id": 1, "started_at": started(101), "processing_ms": 5000, "input_rows": 400},
        {"app_id": "a", "batch_id": 3, "started_at": started(300), "processing_ms": 9000, "input_rows": 900},
    ]
    phases = [{"bronze": 1000, "silver": 2000}, {"bronze": 3000}, {"bronze": 2000, "silver": 4000}, {"bronze": 9}]
    for batch, phase_ms in zip(batches, phases, strict=True):
        batch["phase_ms"] = phase_ms
    commits = {"a:1": 103_000, "a:2": 109_000, "b:1": 105_000, "a:3": 308_000}

    stats = batch_stats(batches, commits, start=100, end=200)

    assert stats["batches"] == 3
    assert stats["queries"] == 2
    assert stats["rows_per_batch"] == pytest.approx(400)
    assert stats["processing_p50_s"] == pytest.approx(5.0)
    assert stats["processing_max_s"] == pytest.approx(6.0)
    # batch start -> Silver commit: 3, 5 and 4 s
    assert stats["start_to_silver_commit_p50_s"] == pytest.approx(4.0)
    # one interval between two commits of a query: a:1 at 103 s, a:2 at 109 s
    assert stats["silver_commit_interval_p50_s"] == pytest.approx(6.0)
    # each step's median over the batches in the window that ran it
    assert stats["phases"] == {
        "bronze": {"batches": 3, "p50_s": pytest.approx(2.0)},
        "silver": {"batches": 2, "p50_s": pytest.approx(3.0)},
    }


def test_a_phase_runs_on_as_few_producer_processes_as_its_rate_needs() -> None:
    # four processes for a plan up to 75,000 events/s at 20,000 each
    shares = [[producer_share(rate, 60.0, index, 20_000)[0] for index in range(4)] for rate in (5_000, 25_000, 75_000)]

    assert shares[0] == [5_000, 0, 0, 0]
    assert shares[1] == [12_500, 12_500, 0, 0]
    assert shares[2] == [18_750, 18_750, 18_750, 18_750]


def test_the_producers_results_say_how_many_processes_sent_each_phase() -> None:
    def outcome(phases: list[tuple[int, int, float]], labels: dict[str, int], undelivered: int) -> dict[str, Any]:
        return {
            "phases": [{"due": due, "sent": sent, "max_lateness_s": late} for due, sent, late in phases],
            "labels": labels,
            "failed": 0,
            "undelivered": undelivered,
            "first_error": None,
        }

    # the first process sends in both phases; the second sits the first out
    outcomes = [
        outcome([(500, 500, 0.02), (750, 749, 0.05)], {"clean": 1200, "duplicate": 49}, 1),
        outcome([(0, 0, 0.0), (750, 750, 0.03)], {"clean": 740, "late": 10}, 0),
    ]

    combined = combined_outcomes(outcomes, 2)

    assert combined["phases"] == [
        {"due": 500, "sent": 500, "max_lateness_s": 0.02, "processes": 1},
        {"due": 1500, "sent": 1499, "max_lateness_s": 0.05, "processes": 2},
    ]
    assert combined["labels"] == {"clean": 1940, "duplicate": 49, "late": 10}
    assert (combined["processes"], combined["undelivered"], combined["failed"]) == (2, 1, 0)


def test_the_steps_go_on_while_the_stream_still_gains() -> None:
    first_lost = judge_step(_samples(1000, 900, lag=0), rate=1000, start=0, end=100)
    kept = judge_step(_samples(2000, 2000, lag=0), rate=2000, start=0, end=100)
    gaining = judge_step(_samples(4000, 3000, lag=0), rate=4000, start=0, end=100)
    saturated = judge_step(_samples(8000, 1500, lag=0), rate=8000, start=0, end=100)

    assert not first_lost.sustained and not gaining.sustained and not saturated.sustained
    assert next_step_worth_running([])
    assert next_step_worth_running([first_lost])  # nothing below it to compare with
    assert next_step_worth_running([first_lost, kept])
    assert next_step_worth_running([first_lost, kept, gaining])  # 3,000 > 2,000 and 900
    assert not next_step_worth_running([first_lost, kept, gaining, saturated])  # 1,500 < 3,000
    assert sustained_rate([first_lost, kept, gaining, saturated]) == 2000
