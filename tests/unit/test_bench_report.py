"""docs/benchmarks.md from recorded runs: a benchmark run alone replaces only its own section, the streaming
section says which step was sustained and whether the gates passed, and a run that changed the protocol's
parameters is marked as such."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from lakehouse.scripts import bench_report
from lakehouse.scripts.bench_stream import StreamOptions

RUN = {
    "command": "python -m lakehouse.scripts.bench stream --steps 1000,2000",
    "started": "2026-12-01 12:00 UTC",
    "git_sha": "0123456789abcdef0123456789abcdef01234567",
    "config_sha256": "feedfacecafebeef",
    "machine": "2 cores (test), 1 GiB RAM, Linux",
    "cpu_steal": 0.012,
    "postgres": {"fsync": "off", "synchronous_commit": "off"},
}


def _step(rate: float, sustained: bool) -> dict[str, Any]:
    batches = dict.fromkeys(("processing_p50_s", "processing_p95_s"), 1.0)
    return {
        "rate": rate,
        "samples": 10,
        "input_rate": rate,
        "processed_rate": rate if sustained else rate / 2,
        "gap_slope": 0.0 if sustained else rate / 2,
        "gap_end": 100,
        "producer_kept_up": True,
        "sustained": sustained,
        "producer": {"due": 10, "sent": 10, "max_lateness_s": 0.01, "processes": 1 if rate < 2000 else 2},
        "batches": {**batches, "batches": 30 if sustained else 6, "queries": 3, "rows_per_batch": 50.0},
    }


def _gate(expected: int) -> dict[str, int]:
    return {"expected": expected, "found": expected, "missing": 0, "unexpected": 0, "repeated": 0}


def _stream_result() -> dict[str, Any]:
    options = StreamOptions(steps=[1000, 2000])
    fresh = {
        "rate": 250,
        "share_of_base": 0.25,
        "verdict": _step(250, True),
        "producer": {"due": 10, "sent": 10, "max_lateness_s": 0.02, "processes": 1, "failed": 0},
        "drain_s": 3.0,
        "gates": {
            "messages": 1000,
            "labels": {"clean": 1000},
            "silver": {**_gate(950), "not_at_a_copy": 0},
            "quarantine": _gate(10),
            "dead_letters": _gate(10),
            "silver_duplicates": {"orders": 0, "device_metrics": 0},
            "drained": True,
            "passed": True,
        },
        "freshness": {"events": 900, "unmapped": 0, "p50_s": 2.5, "p95_s": 4.0, "p99_s": 4.5, "max_s": 6.0},
        "batches": {
            "batches": 4,
            "rows_per_batch": 250.0,
            "phases": {"bronze": {"batches": 4, "p50_s": 0.5}, "silver": {"batches": 3, "p50_s": 1.25}},
        },
    }
    return {
        "options": asdict(options),
        "changed": options.changed(),
        "lake": "/tmp/lake",
        "prefill": {"rows": {"orders": 10}, "days": 30, "last_day": "2026-12-01", "seconds": 1.0},
        "sustained": {
            "steps": [_step(1000, True), _step(2000, False)],
            "not_run": [],
            "sustained_rate": 1000,
            "producer_failed": 0,
        },
        "freshness_base": 1000,
        "freshness_base_source": "the sustained rate",
        "freshness": [fresh],
        "ceiling": {
            "messages": 1000,
            "rules_s": 0.5,
            "events_per_s": 2000.0,
            "kafka_read_s": 0.25,
            "cached_rules_s": 0.2,
        },
        "state": {
            "runs": [
                {"keys": 2_000, "batches": 6, "eviction_ms_p50": 4.0, "batch_ms_p50": 400.0},
                {"keys": 2_000_000, "batches": 6, "eviction_ms_p50": 1_400.0, "batch_ms_p50": 1_200.0},
            ],
            "eviction_us_per_key": 0.7,
            "keys_per_batch": 2_000,
            "steady": {
                "keys": 2_000_000_000.0,
                "eviction_s_per_batch": 466.7,
                "batch_interval_s": 7.5,
                "cores": 186.7,
                "rate_for_two_cores": 10.7,
            },
        },
        "serving_freshness": {"measured": False, "reason": "not measured yet: no streaming query"},
        "passed": True,
    }


@pytest.fixture
def docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, path in {"REPORT": "benchmarks.md", "RESULTS": "benchmarks.json", "RAW": "bench"}.items():
        monkeypatch.setattr(bench_report, name, tmp_path / path)
    return tmp_path


def test_a_stream_run_replaces_only_its_section(docs: Path) -> None:
    earlier = {"run": {"command": "make bench", "started": "2026-11-23 23:46 UTC", "machine": "m"}}
    sides = {"copy_loader": 1.0, "to_sql": 2.0, "to_sql_copy": 1.5}
    loader = {"rows": 3, "gold_write_s": 1.0, "repeats": 1, "untimed_s": sides, "median_s": sides}
    loader |= {"raw_s": {k: [v] for k, v in sides.items()}, "rows_per_s": {k: 3 / v for k, v in sides.items()}}
    loader |= {"ratio_to_sql": 2.0, "ratio_to_sql_copy": 1.5, "postgres": {"fsync": "on"}}
    (docs / "benchmarks.json").write_text(json.dumps({"loader": {**earlier, "result": loader}, "streaming": {}}))

    bench_report.write_report({"stream": _stream_result()}, RUN)

    kept = json.loads((docs / "benchmarks.json").read_text())
    assert sorted(kept) == ["loader", "stream"]
    assert kept["loader"]["result"] == loader
    assert kept["stream"]["run"] == RUN
    assert [p.name[-13:] for p in (docs / "bench").iterdir()] == ["-0123456.json"]
    report = (docs / "benchmarks.md").read_text()
    assert "## PostgreSQL loader" in report
    assert "Run: `make bench`, 2026-11-23 23:46 UTC" in report
    assert "commit 0123456789ab; config feedfacecafebeef" in report
    assert "CPU steal 1.2% over the run; PostgreSQL fsync=off, synchronous_commit=off." in report


def test_the_report_keeps_the_results_of_every_benchmark() -> None:
    """A benchmark missing from ``SECTIONS`` lost its results at the next run of another (model_quality did)."""
    from lakehouse.scripts.bench import BENCHMARKS

    assert bench_report.SECTIONS == BENCHMARKS


def test_the_stream_section_names_the_sustained_step_and_the_gates(docs: Path) -> None:
    bench_report.write_report({"stream": _stream_result()}, RUN)

    report = (docs / "benchmarks.md").read_text()
    assert "**Sustained: 1,000 events/s** (target 50,000 events/s)." in report
    assert "| 2,000 | 2,000 | 1,000 | +1,000 (+50.0%) | 100 | 6 |" in report
    assert "| 1.00 / 1.00 | **sustained** |" in report
    assert "not sustained: the backlog grows (noisy: 2 batches per query measured) |" in report
    assert "| 250 | 25% | 900 | 2.5 | 4.0 | 4.5 | 6.0 |" in report
    assert "Producer processes per step: 1 at 1,000, 2 at 2,000 events/s; messages not delivered: 0." in report
    assert "| 2,000,000 | 6 | 1,400 | 1,200 |" in report
    assert "slopes over the second half of each step's measured time, the half the verdict reads" in report
    assert "Eviction: 0.70 us of CPU per key held, in every micro-batch. At steady state, at 1,000 events/s" in report
    assert "would hold 2,000,000,000 keys" in report and "467 CPU-s per micro-batch, 186.7 cores" in report
    assert "the eviction alone takes both cores at 11 events/s." in report
    assert "over a state of one batch's keys and of 2,000,000 keys" in report
    assert "Measured micro-batches of 2,000 new keys each, after the one that filled the state." in report
    gates = "| 250 | 1,000 | 950 / 950 / 0 / 0 / 0 / 0 | 10 / 10 / 0 / 0 / 0 | 10 / 10 / 0 / 0 / 0 | 0 | yes | yes |"
    assert gates in report
    assert "| produce -> serving.order_revenue_5min | | not measured yet" in report
    assert "| the Kafka read alone | 1,000 | 0.25 | 4,000 |" in report
    assert "on the messages cached in memory (no Kafka read), no-op sink | 1,000 | 0.20 | 5,000 |" in report
    assert "**Not the full protocol**: this run changed `steps=[1000, 2000]`" in report
    assert "| 250 | - | 0.50 (4) | - | - | 1.25 (3) | - | - | - | - |" in report


def test_without_a_stream_run_the_section_says_so_with_the_protocol() -> None:
    report = bench_report.render({})

    assert "Not measured with this protocol yet." in report
    assert "steps of 5,000, 7,500, 10,000, 25,000, 50,000, 75,000 events/s" in report
    assert "first runs 240 s unmeasured at its first rate" in report


def test_the_stream_section_shows_where_the_cpu_went_in_the_runs_that_read_it(docs: Path) -> None:
    result = _stream_result()
    groups = ["tasks", "jit", "py4j", "query_threads", "gc", "scheduler", "jvm_other", "python"]
    groups += ["producers", "broker", "postgres", "rest", "idle"]
    used = dict(zip(groups, [0.8, 0.3, 0.2, 0.1, 0.05, 0.05, 0.1, 0.1, 0.15, 0.02, 0.01, 0.02, 0.1], strict=True))
    result["sustained"]["steps"][0]["cpu"] = {"seconds": 100.0, "cores": 2, "events": 100_000, "cores_used": used}

    bench_report.write_report({"stream": result}, RUN)

    report = (docs / "benchmarks.md").read_text()
    assert "### Where the CPU goes (measured time)" in report
    # the stream: its JVM and Python, 1.7 cores x 100 s = 170 CPU-s over 100,000 events: 1.7 ms each
    row = "| step 1,000 | 1,000 | 1.700 | 0.80 | 0.30 | 0.20 | 0.10 | 0.05 | 0.05 | 0.10 | 0.10 | 0.15 | 0.02 | 0.01 |"
    assert row in report
    assert "| step 2,000 |" not in report  # a step without CPU readings has no row


def test_a_run_recorded_before_the_dedup_state_part_renders_without_it(docs: Path) -> None:
    # runs of 2026-12-07 and before: no per-step producer counts, no dedup state measured, no state_keys option
    result = _stream_result()
    del result["state"]
    del result["options"]["state_keys"]
    for step in result["sustained"]["steps"]:
        del step["producer"]["processes"]

    bench_report.write_report({"stream": result}, RUN)

    report = (docs / "benchmarks.md").read_text()
    assert "Producer processes per step: not recorded by this run; messages not delivered: 0." in report
    assert "Dedup state" not in report


def test_the_dedup_state_renders_both_operators_side_by_side(docs: Path) -> None:
    result = _stream_result()
    spark = {**result["state"], "batch_us_per_key": 0.4, "fill_us_per_key": 3.0}
    del spark["keys_per_batch"]
    timers = {
        "runs": [
            {"keys": 2_000, "batches": 6, "eviction_ms_p50": 0.0, "batch_ms_p50": 450.0},
            {"keys": 2_000_000, "batches": 6, "eviction_ms_p50": 0.0, "batch_ms_p50": 430.0},
        ],
        "eviction_us_per_key": 0.0,
        "batch_us_per_key": -0.01,
        "fill_us_per_key": 9.5,
        "size": {"sst_bytes": [300_000, 280_300_000], "bytes_per_key": 140.0},
        "steady": {
            "keys": 2_000_000_000.0,
            "eviction_s_per_batch": 0.0,
            "batch_interval_s": 7.5,
            "cores": 0.0,
            "rate_for_two_cores": None,
        },
    }
    result["state"]["operators"] = {"spark": spark, "timers": timers}

    bench_report.write_report({"stream": result}, RUN)

    report = (docs / "benchmarks.md").read_text()
    assert "| spark | 2,000,000 | 6 | 1,400 | 1,200 |" in report
    assert "| timers | 2,000,000 | 6 | 0 | 430 |" in report
    assert "Spark's own operator: Eviction: 0.70 us of CPU per key held, in every micro-batch." in report
    assert "The timer dedup (what the stream runs; `lakehouse.spark.timer_dedup`): Eviction: 0.00 us" in report
    assert "The eviction's cost per key held was not measurable above the noise." in report
    # 2,000,000,000 keys of 140 bytes
    assert "On disk: 140 bytes per key held (RocksDB's SST files, with a snapshot at every commit), 280 GB" in report
    assert "Writing a new key (the first batch of each larger run" in report and "spark 3.0 us, timers 9.5 us" in report
    assert "measured Spark's own operator only" not in report


def test_steps_not_run_say_which_rule_ended_the_run(docs: Path) -> None:
    result = _stream_result()
    result["sustained"]["not_run"] = [4000]
    bench_report.write_report({"stream": result}, RUN)
    old_rule = "| 4,000 | | | | | | | | not run: the step before was not sustained |"
    assert old_rule in (docs / "benchmarks.md").read_text()

    result["sustained"]["stop_rule"] = "gaining"
    bench_report.write_report({"stream": result}, RUN)
    new_rule = "| 4,000 | | | | | | | | not run: the step before was not sustained, and finished no more than a step"
    assert new_rule in (docs / "benchmarks.md").read_text()
