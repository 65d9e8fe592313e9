"""The small version of the chaos run (``make chaos`` runs the large one, docs/reliability.md): 20,000 events of the
three types with the full fault mix, produced while the stream runs continuously; two ``kill -9``s of the streaming
driver and one ``kill -9`` and restart of the Kafka broker at random moments; then a catch-up run. Every message
must be accounted for exactly once, against what Kafka holds and what the producer reports, not the stream's own
counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakehouse.config.settings import Settings
from lakehouse.kafka.generator import INVALID_FAULTS, MALFORMED_FAULTS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]
EVENTS = 20_000


def test_exactly_once_across_driver_kills_and_a_broker_bounce(
    kafka_stack: Settings, postgres_stack: Settings, isolated_lake: Settings, spark: Any, tmp_path: Path
) -> None:
    from lakehouse.scripts.chaos_stream import BROKER_BOUNCE, DRIVER_KILL, StreamChaosPlan, run_stream_chaos
    from lakehouse.scripts.kafka_broker import KafkaBroker

    plan = StreamChaosPlan(events=EVENTS, rate=500, driver_kills=2, broker_bounces=1, seed=19)
    result = run_stream_chaos(spark, plan, tmp_path / "chaos", KafkaBroker(kafka_stack))

    assert sorted(f.kind for f in result.faults) == sorted([DRIVER_KILL, DRIVER_KILL, BROKER_BOUNCE])
    assert all(f.recovered_after_s is not None for f in result.faults)
    assert all(0 < f.end_offsets < EVENTS for f in result.faults), "every fault must hit while events arrive"
    # the producer sent every event on schedule and the broker acknowledged them all, across its restart
    assert [p["sent"] for p in result.producer["phases"]] == [EVENTS]
    assert result.producer["failed"] == result.producer["undelivered"] == 0
    labels = result.producer["labels"]
    assert sum(labels.values()) == EVENTS
    checks = result.checks
    assert checks["labels"] == labels, "Kafka holds other messages than the producer sent"
    assert checks["bronze"] == {"kafka": EVENTS, "bronze": EVENTS, "missing": 0, "unexpected": 0, "repeated": 0}
    expected = {
        "quarantine": sum(n for label, n in labels.items() if label in INVALID_FAULTS),
        "dead_letters": sum(n for label, n in labels.items() if label in MALFORMED_FAULTS),
    }
    for table, count in expected.items():
        assert count > 0, f"the fault mix produced no {table} rows"
        assert checks[table] == {"expected": count, "found": count, "missing": 0, "unexpected": 0, "repeated": 0}
    silver = checks["silver"]
    assert silver["expected"] == silver["found"] > 0
    assert silver["missing"] == silver["unexpected"] == silver["repeated"] == silver["not_at_a_copy"] == 0
    assert not any(checks["silver_duplicates"].values())
    # every message and Silver row counted once in the audit, however often its batch was replayed after a kill
    assert checks["audit"] == {"input_rows": EVENTS, "output_rows": silver["found"]}
    assert result.passed
