"""The hostile-input benchmark's arithmetic and report, and the hostile set it streams."""

from __future__ import annotations

import json

from lakehouse.kafka.generator.hostile import HOSTILE_TENANTS, hostile_documents
from lakehouse.scripts.bench_hostile import hostile_section, run_order, summary


def _run(kind: str, *batches: tuple[int, int, bool]) -> dict:
    return {
        "input": kind,
        "seconds": 9.0,
        "batches": [{"batch": b, "rows": 10, "ms": ms, "hostile": h} for b, ms, h in batches],
    }


def test_normal_time_is_the_clean_runs_slowest_batch_after_the_first() -> None:
    runs = [
        _run("clean", (0, 9000, False), (1, 800, False), (2, 700, False)),
        _run("hostile", (0, 8000, True), (1, 750, True), (2, 900, False)),
    ]
    assert summary(runs) == {
        "median_clean_batch_ms": 750.0,
        "median_hostile_batch_ms": 750.0,
        "median_ratio": 1.0,
        "normal_batch_ms": 800,
        "slowest_hostile_batch_ms": 750,
        "slowest_other_batch_ms": 900,
        "hostile_batches": 1,
        "ratio": 0.938,
        "within_normal": True,
    }
    runs.append(_run("hostile", (1, 1200, True)))
    assert summary(runs)["within_normal"] is False


def test_a_run_without_a_hostile_batch_is_not_within_normal() -> None:
    assert summary([_run("clean", (1, 800, False)), _run("hostile", (1, 600, False))])["within_normal"] is False


def test_the_section_marks_hostile_batches() -> None:
    runs = [_run("clean", (0, 9000, False), (1, 800, False)), _run("hostile", (0, 8000, False), (1, 1200, True))]
    entry = {"run": {}, "result": {"events": 1000, "max_records": 100, "pairs": 1, "runs": runs, **summary(runs)}}
    text = "\n".join(hostile_section(entry, lambda run: "Run: x."))
    assert "took **1,200 ms**, **over** the normal time (the clean runs' slowest batch) of 800 ms (ratio 1.5)" in text
    assert "| 2 | hostile | 9.0 | 2 | 8,000, 1,200* |" in text


def test_the_hostile_set() -> None:
    valid = {"event_id": "e", "tenant_id": "t1", "order_id": "o1"}
    documents = hostile_documents(valid, "order_id")
    assert len(documents) == 5 + len(HOSTILE_TENANTS)
    assert len(documents[0]) > 10_000_000 and len(documents[1]) > 3_000_000
    assert b"\\u0000" in documents[2] and b"\\ud800" in documents[3]
    assert [json.loads(d)["tenant_id"] for d in documents[4:7]] == list(HOSTILE_TENANTS)
    assert documents[-1].count(b"{") == 1 + 100 + 1  # the document, 100 wrappers, the innermost {}
    assert len({json.loads(d)["event_id"] for d in documents}) == len(documents), "each its own event id"


def test_runs_go_in_abba_order() -> None:
    assert run_order(2) == ["clean", "hostile", "hostile", "clean"]
    assert run_order(3)[4:] == ["clean", "hostile"]
