"""The streaming benchmark's dedup-state part: the eviction measured on a real dedup query over a state of a given
size, and the steady-state figures worked out from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse.scripts.bench_state import KEYS_PER_BATCH, state_eviction, steady_state


def test_the_eviction_is_measured_over_states_of_both_sizes(spark: SparkSession, tmp_path: Path) -> None:
    measured = state_eviction(spark, tmp_path, keys=40_000, batches=2)

    small, large = measured["runs"]
    assert (small["keys"], large["keys"]) == (KEYS_PER_BATCH, 40_000)
    # every measured micro-batch of new keys reported its eviction (the batch that filled the state is not measured)
    assert small["batches"] == large["batches"] == 2
    assert large["eviction_ms_p50"] is not None and large["eviction_ms_p50"] >= 0
    expected = (large["eviction_ms_p50"] - small["eviction_ms_p50"]) * 1000 / (40_000 - KEYS_PER_BATCH)
    assert measured["eviction_us_per_key"] == pytest.approx(expected)
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
