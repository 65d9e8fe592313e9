"""The scoring benchmark's pure parts: the alternation of its runs, medians and the on/off ratio against the
target, the worst-case input's selection, and its section of docs/benchmarks.md."""

from __future__ import annotations

from typing import Any

import pytest

from lakehouse.kafka.generator import GeneratedMessage
from lakehouse.scripts import bench_report
from lakehouse.scripts.bench_scoring import (
    clean_events,
    only_reviews_with_text,
    side_order,
    summary,
)
from lakehouse.scripts.errors import BenchError

RUN = {
    "command": "python -m lakehouse.scripts.bench scoring --scoring-events 1000",
    "started": "2026-12-02 01:00 UTC",
    "git_sha": "0123456789abcdef0123456789abcdef01234567",
    "machine": "2 cores (test), 1 GiB RAM, Linux",
}


def _run(side: str, seconds: float, events: int = 1000) -> dict[str, Any]:
    return {"side": side, "seconds": seconds, "events_per_s": events / seconds}


def _message(event_type: str, text: str | None, fault: str | None = None) -> GeneratedMessage:
    event = {"event_id": f"{event_type}-{text}", "event_type": event_type, "review_text": text}
    return GeneratedMessage(key=None, value=b"{}", event=event, fault=fault)


def test_each_pair_of_sides_runs_in_the_reverse_order_of_the_last() -> None:
    assert side_order(3) == ["off", "on", "on", "off", "off", "on"]


def test_medians_of_each_side_and_their_ratio() -> None:
    runs = [_run("off", 1.0), _run("on", 2.0), _run("off", 2.0), _run("on", 4.0), _run("off", 4.0), _run("on", 8.0)]

    result = summary(runs)

    assert result["off_events_per_s"] == 500.0
    assert result["on_events_per_s"] == 250.0
    assert result["ratio"] == 0.5
    assert result["target_met"] is False


def test_a_ratio_of_exactly_80_percent_meets_the_target() -> None:
    assert summary([_run("off", 4.0), _run("on", 5.0)])["target_met"] is True


def test_no_run_of_a_side_is_an_error() -> None:
    with pytest.raises(BenchError, match="scoring on"):
        summary([_run("off", 1.0)])


def test_the_worst_case_keeps_clean_reviews_with_a_text_only() -> None:
    messages = [
        _message("page_view", None),
        _message("review", None),
        _message("review", ""),
        _message("review", "broken", fault="wrong_type"),
        _message("review", "good"),
        _message("review", "bad"),
        _message("review", "fine"),
    ]

    assert [m.event["review_text"] for m in only_reviews_with_text(messages, 2) if m.event] == ["good", "bad"]
    with pytest.raises(BenchError, match="3 reviews with a text, 4 were wanted"):
        only_reviews_with_text(messages, 4)
    assert len(clean_events(messages)) == 6


def _input(name: str, events: int, off_s: float, on_s: float) -> dict[str, Any]:
    runs = [_run("off", off_s, events), _run("on", on_s, events), _run("off", off_s, events), _run("on", on_s, events)]
    return {"input": name, "events": events, "reviews": 70, "reviews_with_text": 60, "runs": runs, **summary(runs)}


def test_the_section_shows_each_input_with_its_runs_and_verdict() -> None:
    result = {
        "model": "lakehouse_sentiment",
        "version": "3",
        "train_texts": 20000,
        "pairs": 2,
        "target_ratio": 0.8,
        "inputs": [_input("mixed", 1000, 2.0, 2.2), _input("reviews only", 1000, 2.0, 4.0)],
    }

    report = bench_report.render({"scoring": {"run": RUN, "result": result}})

    assert "## Sentiment scoring in the stream: customer_events with scoring on against off" in report
    assert "commit 0123456789ab" in report
    assert "| mixed | 1,000 | 70 (60, 6.0% of the events) | 500 | 455 | **91%** | met | off 2.0, on 2.2, " in report
    assert "| reviews only | 1,000 | 70 (60, 6.0% of the events) | 500 | 250 | **50%** | not met |" in report
    assert "version 3 of `lakehouse_sentiment`" in report
    assert "one unmeasured run of each side over the same input" in report


def test_without_a_scoring_run_there_is_no_section() -> None:
    assert "Sentiment scoring in the stream" not in bench_report.render({})
