"""The streaming benchmark's open-loop producer against the real broker: every message of every phase is sent, each
with the time it was due as its Kafka timestamp (worked out from the plan, not from the producer) and its label,
and a phase of no events sends nothing."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from lakehouse.config.settings import Settings
from lakehouse.config.specs import load_event_types
from lakehouse.kafka.admin import client_config, ensure_topics
from lakehouse.scripts.bench_stream_load import HEADER, LoadPlan

pytestmark = pytest.mark.integration


def test_every_message_goes_out_stamped_with_the_time_it_was_due(
    kafka_stack: Settings, isolated_lake: Settings, tmp_path: Path, unique: str
) -> None:
    specs = list(load_event_types().values())
    ensure_topics(isolated_lake, specs)
    phases = [(300.0, 2.0), (0.0, 1.0), (600.0, 1.0)]  # a process sits out a phase other processes send
    plan = LoadPlan(
        event_types=[spec.name for spec in specs],
        phases=phases,
        start_at=time.time() + 3.0,
        seed=3,
        event_start="2026-12-05T00:00:00+00:00",
        client=client_config(isolated_lake),
        result_file=str(tmp_path / "result.json"),
    )
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(asdict(plan)))

    subprocess.run([sys.executable, "-m", "lakehouse.scripts.bench_stream_load", str(plan_file)], check=True)

    result = json.loads(Path(plan.result_file).read_text())
    expected_ms: list[int] = []
    phase_start = plan.start_at
    for rate, seconds in phases:
        expected_ms += [int((phase_start + i / rate) * 1000) for i in range(int(rate * seconds))]
        phase_start += seconds
    assert [p["sent"] for p in result["phases"]] == [600, 0, 600]
    assert result["failed"] == result["undelivered"] == 0
    consumer = Consumer({**client_config(isolated_lake), "group.id": unique, "auto.offset.reset": "earliest"})
    consumer.subscribe([spec.topic for spec in specs])
    stamps: dict[str, list[int]] = collections.defaultdict(list)
    labels: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + 60
    try:
        while sum(map(len, stamps.values())) < len(expected_ms) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            stamps[message.topic()].append(message.timestamp()[1])
            labels[dict(message.headers() or [])[HEADER].decode()] += 1
    finally:
        consumer.close()
    # message i of the plan goes to the event types in turn
    for index, spec in enumerate(specs):
        assert sorted(stamps[spec.topic]) == sorted(expected_ms[index :: len(specs)])
    assert labels == collections.Counter(result["labels"])
