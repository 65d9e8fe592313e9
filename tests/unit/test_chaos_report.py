"""The chaos run's report: docs/reliability.md keeps its text and gets one section per run, replaced by the next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakehouse.scripts import chaos
from lakehouse.scripts.chaos_stream import FaultRecord, StreamChaosPlan, StreamChaosResult


def _result(passed: bool) -> dict[str, Any]:
    gate = {"expected": 9, "found": 9, "missing": 0, "unexpected": 0, "repeated": 0}
    result = StreamChaosResult(
        plan=StreamChaosPlan(events=1200, rate=100.0, driver_kills=1, broker_bounces=1).__dict__,
        faults=[
            FaultRecord("driver_kill", 12.5, 1100, 31.0, overlapped=True),
            FaultRecord("broker_bounce", 40.1, 1150, 52.4),
        ],
        stream_restarts=2,
        unplanned_stream_exits=1,
        producer={"phases": [{"sent": 1200}], "failed": 0, "undelivered": 0, "labels": {"clean": 1200}},
        checks={
            "bronze": {"kafka": 1200, "bronze": 1200, "missing": 0, "unexpected": 0, "repeated": 0},
            "silver": {**gate, "expected": 1150, "found": 1150},
            "quarantine": gate,
            "dead_letters": {**gate, "missing": 1},
            "silver_duplicates": {"orders": 0},
            "audit": {"input_rows": 1200, "output_rows": 1150},
        },
        passed=passed,
    )
    return result.as_dict()


def test_each_run_replaces_the_last_section_and_keeps_the_text_above(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chaos, "ROOT", tmp_path)
    monkeypatch.setattr(chaos, "RAW", tmp_path / "docs" / "chaos")
    monkeypatch.setattr(chaos, "REPORT", tmp_path / "docs" / "reliability.md")
    (tmp_path / "docs").mkdir()
    chaos.REPORT.write_text("# Reliability\n\nHow it works.\n")
    run = {"command": "make chaos", "started": "2026-12-03 10:00 UTC", "git_sha": "abc1234def", "machine": "2 cores"}

    chaos.write_report(_result(passed=False), run)
    chaos.write_report(_result(passed=True), run)

    text = chaos.REPORT.read_text()
    assert text.startswith("# Reliability\n\nHow it works.\n\n## The latest chaos run\n")
    assert text.count("## The latest chaos run") == 1
    assert "**Checks passed.**" in text and "FAILED" not in text
    assert "| driver kill | 12.5 | 1,100 | 31.0 | yes |" in text
    assert "| broker bounce | 40.1 | 1,150 | 52.4 | no |" in text
    assert "Stream restarts: 2, of which 1 after an exit of its own" in text
    assert "| Bronze = Kafka (topic, partition, offset) | 1,200 | 1,200 | 0 | 0 | 0 |" in text
    assert "| dead letters | 9 | 9 | 1 | 0 | 0 |" in text
    assert "1,200 sent, 0 failed, 0 undelivered" in text
    assert len(list(chaos.RAW.glob("*-abc1234.json"))) >= 1


def test_the_gold_half_gets_its_faults_and_serving_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse.scripts.chaos_gold import GoldChaosResult, GoldFault

    monkeypatch.setattr(chaos, "ROOT", tmp_path)
    monkeypatch.setattr(chaos, "RAW", tmp_path / "docs" / "chaos")
    monkeypatch.setattr(chaos, "REPORT", tmp_path / "docs" / "reliability.md")
    (tmp_path / "docs").mkdir()
    gold = GoldChaosResult(
        runs={"2026-12-02": "success"},
        run_seconds={"2026-12-02": 310.5},
        faults=[GoldFault("scheduler_kill", "2026-12-02", 42.0, ["dim_date.build"], 130.2, {"dim_date.build": 2})],
        retried_tasks=1,
        airflow_restarts=0,
        serving={"fct_orders_daily": {"gold": 40, "serving": 40, "missing": 0, "unexpected": 0}},
        passed=True,
    )
    result = {**_result(passed=True), "gold": gold.as_dict()}
    run = {"command": "make chaos", "started": "2026-12-03 10:00 UTC", "git_sha": "abc1234def", "machine": "2 cores"}

    chaos.write_report(result, run)

    text = chaos.REPORT.read_text()
    assert "### Gold under faults" in text
    assert "run of 2026-12-02: success in 310.5 s" in text
    assert "| scheduler kill | 2026-12-02 | 42.0 | dim_date.build | 130.2 | dim_date.build: 2 |" in text
    assert "| fct_orders_daily | 40 | 40 | 0 | 0 |" in text
