"""Topic admin and the producer against the real local broker; messages are consumed back and compared as bytes.
Every test works on topics of its own (suffix from the `unique` fixture) and deletes them afterwards."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient, NewTopic
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from lakehouse.config.settings import Settings, config_dir
from lakehouse.config.specs import EventTypeSpec, load_event_types
from lakehouse.kafka.admin import METADATA_TIMEOUT_S, ensure_topics
from lakehouse.kafka.errors import KafkaClientError
from lakehouse.kafka.generator import GeneratorOptions, generate
from lakehouse.kafka.producer import EventProducer
from lakehouse.orchestration.cli import app
from tests.shipments import SHIPMENTS_V1, onboard_shipments

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")


class Topics:
    """Creates topics for one test and deletes them (and those it was told about) afterwards."""

    def __init__(self, settings: Settings) -> None:
        self.admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
        self.created: list[str] = []

    def create(self, topic: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})
        self.admin.create_topics([new])[topic].result()
        self.created.append(topic)
        return topic

    def delete_all(self) -> None:
        existing = set(self.admin.list_topics(timeout=10).topics)
        doomed = [t for t in self.created if t in existing]
        if doomed:
            for future in self.admin.delete_topics(doomed, operation_timeout=30).values():
                future.result()


@pytest.fixture
def topics(kafka_stack: Settings) -> Iterator[Topics]:
    helper = Topics(kafka_stack)
    yield helper
    helper.delete_all()


def _consume(
    settings: Settings, topic: str, expected: int, timeout_s: float = 60
) -> list[tuple[int, bytes | None, bytes]]:
    """(partition, key, value) of the first ``expected`` messages of a topic, by partition and offset."""
    return [
        (partition, key, value) for partition, key, value, _ in _consume_timed(settings, topic, expected, timeout_s)
    ]


def _consume_timed(
    settings: Settings, topic: str, expected: int, timeout_s: float = 60
) -> list[tuple[int, bytes | None, bytes, int]]:
    """(partition, key, value, create time in ms) of the first ``expected`` messages, by partition and offset."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"test-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": "false",
        }
    )
    consumer.subscribe([topic])
    records: list[tuple[int, int, bytes | None, bytes, int]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                continue
            value = message.value()
            assert value is not None
            _, created_ms = message.timestamp()
            records.append((message.partition() or 0, message.offset() or 0, message.key(), value, created_ms))
    finally:
        consumer.close()
    records.sort(key=lambda r: (r[0], r[1]))
    return [(partition, key, value, created) for partition, _, key, value, created in records]


def _pairs(records: list[tuple[int, bytes | None, bytes]]) -> list[tuple[bytes | None, bytes]]:
    return [(key, value) for _, key, value in records]


def _renamed(spec: EventTypeSpec, topic: str) -> EventTypeSpec:
    return spec.model_copy(update={"topic": topic})


def test_ensure_topics_creates_configured_partitions_and_is_idempotent(
    kafka_stack: Settings, topics: Topics, unique: str
) -> None:
    specs = [_renamed(spec, f"{spec.topic}_{unique}") for spec in load_event_types().values()]
    names = sorted(spec.topic for spec in specs)
    topics.created.extend(names)

    assert ensure_topics(kafka_stack, specs) == dict.fromkeys(names, True)

    metadata = topics.admin.list_topics(timeout=10)
    for name in names:
        assert len(metadata.topics[name].partitions) == kafka_stack.kafka.topic_partitions == 3
    assert ensure_topics(kafka_stack, {spec.name: spec for spec in specs}) == dict.fromkeys(names, False)


def test_send_file_sends_every_line_byte_for_byte(
    kafka_stack: Settings, topics: Topics, unique: str, tmp_path: Path
) -> None:
    topic = topics.create(f"raw_lines_{unique}")
    lines = [
        b'{"event_id":"1","note":"caf\xc3\xa9"}',
        b'{"event_id":"2","region":"Montr\xe9al"}',  # Latin-1: not UTF-8
        b"this is not json",
        b"",  # an empty line in the middle is an (empty) message
        b"[1,2,3]",
        b"  padded with spaces  ",
        b'{"crlf":true}',
    ]
    path = tmp_path / "lines.jsonl"
    # the CRLF line, then a trailing empty line, which must be ignored
    path.write_bytes(b"\n".join(lines[:-1]) + b"\n" + lines[-1] + b"\r\n\n")

    with EventProducer(kafka_stack) as producer:
        assert producer.send_file(topic, path) == len(lines)

    assert _pairs(_consume(kafka_stack, topic, len(lines))) == [(None, line) for line in lines]


def test_send_events_keys_by_the_kafka_key(kafka_stack: Settings, topics: Topics, unique: str) -> None:
    specs = load_event_types()
    orders = _renamed(specs["orders"], f"orders_{unique}")
    devices = _renamed(specs["device_metrics"], f"device_metrics_{unique}")
    topics.create(orders.topic, partitions=3)
    topics.create(devices.topic, partitions=3)
    generated = list(generate(orders, 500, GeneratorOptions(seed=21, duplicate_fraction=0.05)))
    readings: list[dict[str, Any]] = [
        {
            "event_id": f"e{i}",
            "event_type": "reading",
            "schema_version": 1,
            "tenant_id": "tenant_01",
            "event_timestamp": "2026-11-20T10:00:00.000Z",
            "device_id": f"tenant_01-D{i % 4:03d}",
            "metric": "humidity",
            "value": 40.5 + i,
            "unit": "%",
        }
        for i in range(40)
    ]

    with EventProducer(kafka_stack) as producer:
        assert producer.send_events(orders, generated, total=len(generated)) == 500
        assert producer.send_events(devices, readings) == 40

    consumed = _consume(kafka_stack, orders.topic, 500)
    assert len(consumed) == 500
    for _, key, value in consumed:
        assert key == json.loads(value)["order_id"].encode()
    assert sorted(value for _, _, value in consumed) == sorted(m.value for m in generated)
    partitions_of_key: dict[bytes | None, set[int]] = {}
    for partition, key, _ in consumed:
        partitions_of_key.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions_of_key.values()), "one key, one partition: per-order ordering"
    assert len({p for ps in partitions_of_key.values() for p in ps}) == 3

    consumed_devices = _consume(kafka_stack, devices.topic, 40)
    assert sorted(_pairs(consumed_devices)) == sorted(
        (r["device_id"].encode(), json.dumps(r, separators=(",", ":")).encode()) for r in readings
    )


def test_send_raw_respects_the_rate(kafka_stack: Settings, topics: Topics, unique: str) -> None:
    topic = topics.create(f"orders_{unique}")
    spec = _renamed(load_event_types()["orders"], topic)
    started = time.monotonic()
    with EventProducer(kafka_stack) as producer:
        assert producer.send_events(spec, generate(spec, 60, GeneratorOptions(seed=1)), rate=100) == 60
        assert producer.send_raw(topic, [(b"k", b"v"), (None, b"\xff")]) == 2
    assert time.monotonic() - started >= 0.55
    assert _pairs(_consume(kafka_stack, topic, 62))[-2:] == [(b"k", b"v"), (None, b"\xff")]


def _lakehouse(*args: str) -> str:
    """Run the ``lakehouse`` command as a user does; its output (stdout, and the log on stderr)."""
    result = subprocess.run([LAKEHOUSE, *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def _sent_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(r"\bsent\b", line)]


def test_produce_file_keyed_by_a_json_field_at_a_steady_rate(
    kafka_stack: Settings, topics: Topics, unique: str, tmp_path: Path
) -> None:
    topic = topics.create(f"replay_{unique}", partitions=3)
    order_ids = [f"ORD-{n:03d}" for n in range(12)]
    lines = [json.dumps({"order_id": order_ids[i % 12], "seq": i}).encode() for i in range(36)]
    lines += [b"not json", b'{"seq": 99}', b'["ORD-001"]']  # no key: not an object, or no order_id
    path = tmp_path / "replay.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    rate = 50

    output = _lakehouse(
        "produce", "--topic", topic, "--file", str(path), "--key-field", "order_id", "--rate", str(rate)
    )

    consumed = _consume_timed(kafka_stack, topic, len(lines))
    expected = [(order_ids[i % 12].encode(), line) for i, line in enumerate(lines[:36])] + [
        (None, line) for line in lines[36:]
    ]
    assert sorted(((key or b"", value) for _, key, value, _ in consumed)) == sorted(
        (key or b"", value) for key, value in expected
    )
    sequences: dict[bytes, list[int]] = {}
    partitions_of_key: dict[bytes, set[int]] = {}
    for partition, key, value, _ in consumed:
        if key is not None:
            sequences.setdefault(key, []).append(json.loads(value)["seq"])
            partitions_of_key.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions_of_key.values()), "one key, one partition"
    assert len(set().union(*partitions_of_key.values())) > 1, "the keys spread over the partitions"
    assert all(seqs == sorted(seqs) for seqs in sequences.values()), "a key's lines keep their order"
    created = sorted(ms for *_, ms in consumed)
    for i, ms in enumerate(created):  # never ahead of a steady schedule of `rate` messages per second
        assert ms - created[0] >= i * 1000 / rate - 25, (i, ms - created[0])
    assert created[-1] - created[0] < (len(lines) - 1) * 1000 / rate + 2000
    assert len(_sent_lines(output)) == 1, output
    assert f"sent {len(lines)} lines of {path}" in output
    assert "3 line(s)" in output, "the lines sent without key are counted"


def test_produce_a_yaml_only_event_type_for_given_tenants(
    kafka_stack: Settings, isolated_lake: Settings, topics: Topics, unique: str
) -> None:
    config = config_dir()
    onboard_shipments(config, unique)
    topic = topics.create(f"shipments_{unique}", partitions=3)

    args = ["--event-type", "shipments", "--count", "90", "--seed", "5"]
    output = _lakehouse("produce", *args, "--tenant-id", "acme", "--tenant-id", "globex,initech")

    consumed = _consume(kafka_stack, topic, 90)
    assert len(consumed) == 90
    validator = Draft202012Validator(SHIPMENTS_V1, format_checker=Draft202012Validator.FORMAT_CHECKER)
    events = [json.loads(value) for _, _, value in consumed]
    assert all(list(validator.iter_errors(event)) == [] for event in events)
    assert {event["tenant_id"] for event in events} == {"acme", "globex", "initech"}
    assert all(key == json.loads(value)["shipment_id"].encode() for _, key, value in consumed)
    assert {partition for partition, _, _ in consumed} == {0, 1, 2}
    assert len(_sent_lines(output)) == 1, output
    assert f"sent 90 shipments events to topic {topic}" in output


def test_produce_rejects_options_that_do_not_go_together() -> None:
    runner = CliRunner()
    both = runner.invoke(app, ["produce", "--event-type", "orders", "--tenants", "3", "--tenant-id", "acme"])
    assert both.exit_code == 2 and "not both" in both.output
    key = runner.invoke(app, ["produce", "--event-type", "orders", "--key-field", "order_id"])
    assert key.exit_code == 2 and "--key-field goes with --file" in key.output


def test_undelivered_messages_fail_on_exit(kafka_stack: Settings, topics: Topics, unique: str) -> None:
    topic = topics.create(f"small_{unique}", config={"max.message.bytes": "2000"})
    incompressible = random.Random(0).randbytes(10_000)  # the topic refuses it even lz4-compressed

    producer = EventProducer(kafka_stack)
    assert producer.send_raw(topic, [(None, b"fits")]) == 1
    assert producer.send_raw(topic, [(None, incompressible), (None, incompressible)]) == 0
    with pytest.raises(KafkaClientError, match=rf"2 message\(s\) were not delivered to topic '{topic}'") as raised:
        producer.close()
    assert "too large" in str(raised.value).lower()


def test_missing_topic_and_unreachable_broker_name_the_fix(kafka_stack: Settings, unique: str) -> None:
    with EventProducer(kafka_stack) as producer, pytest.raises(KafkaClientError, match="lakehouse topics"):
        producer.send_raw(f"missing_{unique}", [(None, b"x")])

    nowhere = kafka_stack.model_copy(
        update={"kafka": kafka_stack.kafka.model_copy(update={"bootstrap_servers": "localhost:1"})}
    )
    # a refused connection is reported once every broker is down, not after the whole metadata timeout
    for attempt in (lambda: EventProducer(nowhere), lambda: ensure_topics(nowhere, [])):
        started = time.monotonic()
        with pytest.raises(KafkaClientError, match=r"localhost:1 .*`lakehouse stack up kafka`"):
            attempt()
        assert time.monotonic() - started < METADATA_TIMEOUT_S


def test_an_environment_that_creates_no_topics_names_the_missing_ones_and_creates_nothing(
    kafka_stack: Settings, topics: Topics, unique: str
) -> None:
    """As on Azure Event Hubs (``kafka.create_topics: false``): existing topics pass, a missing one is one line."""
    from lakehouse.kafka.errors import KafkaClientError

    orders = load_event_types()["orders"]
    present, absent = _renamed(orders, f"present_{unique}"), _renamed(orders, f"absent_{unique}")
    topics.created.append(present.topic)
    assert ensure_topics(kafka_stack, [present]) == {present.topic: True}
    no_creation = kafka_stack.model_copy(
        update={"kafka": kafka_stack.kafka.model_copy(update={"create_topics": False})}
    )
    assert ensure_topics(no_creation, [present]) == {present.topic: False}
    with pytest.raises(KafkaClientError, match=f"{absent.topic} do not exist.*create them as event hubs"):
        ensure_topics(no_creation, [present, absent])
    assert absent.topic not in topics.admin.list_topics(timeout=10).topics
