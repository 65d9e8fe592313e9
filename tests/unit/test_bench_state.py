"""The streaming benchmark's dedup-state part: the eviction measured on a real dedup query over a state of a given
size, and the steady-state figures worked out from it."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.listener import StreamingQueryProgress

from lakehouse.scripts.bench_state import KEYS_PER_BATCH, run_dedup, state_eviction, steady_state


def test_the_eviction_is_measured_over_states_of_both_sizes(spark: SparkSession, tmp_path: Path) -> None:
    measured = state_eviction(spark, tmp_path, keys=40_000, batches=2)

    small, large = measured["runs"]
    assert (small["keys"], large["keys"]) == (KEYS_PER_BATCH, 40_000)
    # every measured micro-batch of new keys reported its eviction (the batch that filled the state is not measured)
    assert small["batches"] == large["batches"] == 2
    assert large["eviction_ms_p50"] is not None and large["eviction_ms_p50"] >= 0
    expected = (large["eviction_ms_p50"] - small["eviction_ms_p50"]) * 1000 / (40_000 - KEYS_PER_BATCH)
    assert measured["eviction_us_per_key"] == pytest.approx(expected)
    assert measured["operators"]["spark"]["runs"] == measured["runs"]
    # the suite's session loads the timer dedup, measured beside Spark's operator over the same sizes
    timers = measured["operators"]["timers"]
    assert [run["operator"] for run in timers["runs"]] == ["transformWithStateExec"] * 2
    assert [run["operator"] for run in measured["runs"]] == ["dedupeWithinWatermark"] * 2
    assert [run["keys"] for run in timers["runs"]] == [KEYS_PER_BATCH, 40_000]
    fill_ms = timers["runs"][1]["fill_ms"]
    assert fill_ms > 0 and timers["fill_us_per_key"] == pytest.approx(fill_ms * 1000 / 40_000)
    # a key row's key alone is 35 random hexadecimal characters, which LZ4 cannot shrink much; the timers hold a
    # value and two timer entries per key, Spark's operator one entry
    sizes = {name: operator["size"] for name, operator in measured["operators"].items()}
    assert all(size["sst_bytes"][0] > 0 for size in sizes.values())
    assert 30 <= sizes["spark"]["bytes_per_key"] < sizes["timers"]["bytes_per_key"]
    for size in sizes.values():
        large_minus_small = size["sst_bytes"][1] - size["sst_bytes"][0]
        assert size["bytes_per_key"] == pytest.approx(large_minus_small / 40_000)
    assert list(tmp_path.iterdir()) == []  # each run removes its input and checkpoint


def test_at_steady_state_a_query_holds_two_watermarks_of_accepted_keys() -> None:
    # 3,000 events/s over three queries, 90% accepted, one-day watermarks: each query takes 900 keys/s and holds
    # them for two days (172,800 s) -> 155,520,000 keys each
    steady = steady_state(0.5, 3_000.0, 0.9, [86_400_000] * 3, 10.0)

    assert steady["keys"] == pytest.approx(3 * 155_520_000)
    # 155,520,000 keys x 0.5 us per query's batch
    assert steady["eviction_s_per_batch"] == pytest.approx(77.76)
    # three queries, one batch each every 10 s
    assert steady["cores"] == pytest.approx(3 * 77.76 / 10)
    # the eviction's cost grows with the rate: both cores at 2 / 23.328 of 3,000 events/s
    assert steady["rate_for_two_cores"] == pytest.approx(3_000 * 2 / 23.328)
    # a cost per key below the noise (a negative difference of medians) is none: no rate fills the cores
    nothing = steady_state(-0.01, 3_000.0, 0.9, [86_400_000] * 3, 10.0)
    assert nothing["cores"] == 0 and nothing["rate_for_two_cores"] is None


def test_a_key_stays_until_the_watermark_passes_its_event_time_plus_the_delay(
    spark: SparkSession, tmp_path: Path
) -> None:
    # the stream's operator with a one-hour delay: one key at T, then one new key per batch, later in event time
    start = 1_796_601_600  # T, epoch seconds
    for index, hours in enumerate([0.0, 1.5, 2.5, 3.0]):
        spark.range(1).select(
            F.lit(f"key-{index}").alias("_k1"),
            F.to_date(F.timestamp_seconds(F.lit(start + int(hours * 3600)))).alias("_k2"),
            F.timestamp_seconds(F.lit(start + int(hours * 3600))).alias("_t"),
        ).write.parquet(str(tmp_path / "input" / f"b{index}"))
        time.sleep(0.01)
    query = run_dedup(spark, tmp_path / "input", tmp_path / "checkpoint", "1 hour")

    def hours_after_start(progress: StreamingQueryProgress) -> float:
        watermark = datetime.fromisoformat(progress.eventTime["watermark"].replace("Z", "+00:00"))
        return (watermark.timestamp() - start) / 3600

    batches = [(hours_after_start(p), p.stateOperators[0].numRowsRemoved) for p in query.recentProgress]
    # the first key's event time plus the delay is T + 1 h: while the watermark is before it (T + 0.5 h among them,
    # past the key's event time) the key stays; the first batch with the watermark at or after it removes the key
    assert [removed for at, removed in batches if at < 1.0] == [0] * len([at for at, _ in batches if at < 1.0])
    assert any(0.0 < at < 1.0 for at, _ in batches)
    assert next(removed for at, removed in batches if at >= 1.0) == 1


def test_the_steady_state_takes_the_highest_rate_freshness_runs_batch_interval_when_the_step_has_none() -> None:
    from lakehouse.config.specs import load_event_types
    from lakehouse.scripts.bench_stream import _steady_state

    def run(interval: float | None) -> dict[str, Any]:
        gates = {"messages": 1_000, "silver": {"expected": 950}}
        return {"batches": {"silver_commit_interval_p50_s": interval}, "gates": gates}

    result = {
        "state": {"eviction_us_per_key": 0.5},
        "sustained": {"steps": [run(None)]},  # a step of one batch per query: no interval between two commits
        "freshness": [run(4.0), run(6.0), run(8.0)],
        "freshness_base": 600.0,
    }
    specs = list(load_event_types().values())

    steady = _steady_state(result, specs)

    assert steady is not None and steady["batch_interval_s"] == 8.0
    # each query takes a third of 600 events/s, 95% of them accepted, and holds them for two of its watermarks
    assert steady["keys"] == pytest.approx(sum(200.0 * 0.95 * 2 * spec.dedup_watermark_ms / 1000 for spec in specs))
    result["sustained"]["steps"] = [run(3.0)]
    assert _steady_state(result, specs)["batch_interval_s"] == 3.0  # type: ignore[index]
