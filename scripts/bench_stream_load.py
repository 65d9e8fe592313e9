"""The streaming benchmark's open-loop load: producer processes that send generated events on a fixed schedule,
whatever the consumer does.

    python -m lakehouse.scripts.bench_stream_load <plan.json>

A plan names the event types, the phases (this process's events/s and seconds of each), the wall-clock time the
first phase starts and the seed. Message ``i`` of a phase is due at ``phase start + i / rate`` and goes to the
event types in turn; every few milliseconds the process sends what has fallen due. Each message's Kafka timestamp
(CreateTime) is the time it was due, not the time ``produce`` ran: a producer that falls behind makes the latency
it measures longer, never shorter (no coordinated omission), and its lateness is reported. A phase the process
cannot keep up with ends at its scheduled end anyway (what was not sent by then is counted as not sent), so one
phase's backlog never spills into the next. Each message carries the generator's label in a header ``bench``
(``clean``, ``late``, ``duplicate`` or the fault), which the stream does not read (it reads no headers) and the
correctness gates do. SIGTERM ends the plan early; the result goes to the plan's ``result_file`` as JSON.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from lakehouse.config.specs import event_type
from lakehouse.kafka.generator import GeneratedMessage, GeneratorOptions, generate
from lakehouse.kafka.producer import PRODUCER_DEFAULTS

HEADER = "bench"
TICK_S = 0.005
GRACE_S = 0.25  # a phase's last messages may go this late; after that, what is left of it is not sent
FLUSH_TIMEOUT_S = 120.0


@dataclass
class LoadPlan:
    """What one producer process sends."""

    event_types: list[str]
    phases: list[tuple[float, float]]  # (events/s of this process, seconds)
    start_at: float  # epoch seconds of the first phase's start
    seed: int
    event_start: str  # ISO time the generated event times start from (``days`` days of them)
    client: dict[str, str]  # librdkafka properties: bootstrap servers and security
    result_file: str
    duplicate_fraction: float = 0.02
    malformed_fraction: float = 0.01
    invalid_fraction: float = 0.01
    late_fraction: float = 0.01
    days: int = 1


@dataclass
class PhaseResult:
    """What one phase sent."""

    rate: float
    seconds: float
    due: int
    sent: int = 0
    max_lateness_s: float = 0.0


@dataclass
class LoadResult:
    """What the process sent and what the broker acknowledged."""

    phases: list[PhaseResult] = field(default_factory=list)
    failed: int = 0
    undelivered: int = 0
    first_error: str | None = None
    labels: dict[str, int] = field(default_factory=dict)


def label(message: GeneratedMessage) -> str:
    """The header value of a generated message."""
    return message.fault or ("late" if message.late else "clean")


def run(plan: LoadPlan) -> LoadResult:
    """Send the plan's phases on schedule; return what was sent."""
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    specs = [event_type(name) for name in plan.event_types]
    total = sum(int(rate * seconds) for rate, seconds in plan.phases)
    options = [
        GeneratorOptions(
            seed=plan.seed * 100 + index,
            start=datetime.fromisoformat(plan.event_start),
            days=plan.days,
            duplicate_fraction=plan.duplicate_fraction,
            malformed_fraction=plan.malformed_fraction,
            invalid_fraction=plan.invalid_fraction,
            late_fraction=plan.late_fraction,
        )
        for index in range(len(specs))
    ]
    streams = [iter(generate(spec, total // len(specs) + 1, opts)) for spec, opts in zip(specs, options, strict=True)]
    topics = [spec.topic for spec in specs]
    result = LoadResult()

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            result.failed += 1
            result.first_error = result.first_error or error.str()

    producer = Producer(
        {**PRODUCER_DEFAULTS, **plan.client, "delivery.report.only.error": True, "on_delivery": delivered}
    )
    produce, poll = producer.produce, producer.poll
    counted = 0  # messages over all phases, for the turn of event types
    phase_start = plan.start_at
    for rate, seconds in plan.phases:
        phase = PhaseResult(rate=rate, seconds=seconds, due=int(rate * seconds))
        result.phases.append(phase)
        phase_end = phase_start + seconds
        while phase.sent < phase.due and not stopping:
            now = time.time()
            if now >= phase_end + GRACE_S:
                break  # behind schedule: the rest of the phase is not sent
            due = min(phase.due, int((now - phase_start) * rate) + 1)
            if due <= phase.sent:
                poll(0)
                # a tick, not the next message's due time: waking up once a message costs the machine more CPU
                # than sending it (the stream under test shares the cores)
                time.sleep(TICK_S)
                continue
            phase.max_lateness_s = max(phase.max_lateness_s, now - (phase_start + phase.sent / rate))
            while phase.sent < due:
                turn = counted % len(streams)
                message = next(streams[turn])
                tag = label(message)
                result.labels[tag] = result.labels.get(tag, 0) + 1
                timestamp = int((phase_start + phase.sent / rate) * 1000)
                while True:
                    try:
                        produce(topics[turn], message.value, message.key, timestamp=timestamp, headers=[(HEADER, tag)])
                        break
                    except BufferError:
                        poll(0.01)  # the local queue is full: wait for deliveries to make room
                phase.sent += 1
                counted += 1
            poll(0)
        phase_start = phase_end
        if stopping:
            break
        # a fast producer sleeps here until the next phase is due
        time.sleep(max(0.0, phase_start - time.time()))
    result.undelivered = producer.flush(FLUSH_TIMEOUT_S)
    return result


def main(argv: list[str]) -> None:
    """Run the plan in the file named on the command line and write its result."""
    raw: dict[str, Any] = json.loads(Path(argv[0]).read_text())
    plan = LoadPlan(**{**raw, "phases": [tuple(p) for p in raw["phases"]]})
    result = run(plan)
    Path(plan.result_file).write_text(json.dumps(asdict(result)))


if __name__ == "__main__":
    main(sys.argv[1:])
