"""The local broker's SASL_SSL listener (SCRAM-SHA-512 over TLS, ACLs by Kafka's StandardAuthorizer): every test
here uses it, with the principals `lakehouse stack env --secure-kafka` exports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from lakehouse.config.settings import Settings, settings
from lakehouse.kafka.errors import KafkaClientError
from lakehouse.kafka.generator import GeneratorOptions, generate

pytestmark = pytest.mark.integration


def _secure_env(stack: Settings, show_secrets: bool = True) -> dict[str, str]:
    from lakehouse.scripts.stack import LocalStack

    exports = LocalStack(stack).env_exports(show_secrets=show_secrets, secure_kafka=True)
    pairs = (line.removeprefix("export ").split("=", 1) for line in exports.splitlines())
    return {name: value.strip("'") for name, value in pairs if name.startswith("KAFKA_")}


@pytest.fixture
def secure(kafka_stack: Settings, isolated_lake: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """isolated_lake with its topics made (on the plaintext listener), then every client on the SASL_SSL one."""
    from lakehouse.kafka.admin import ensure_topics

    ensure_topics(isolated_lake)
    for name, value in _secure_env(kafka_stack).items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()
    yield settings()
    settings.cache_clear()


def _consumer(stack: Settings, principal: str, **extra: Any) -> Consumer:
    from lakehouse.scripts.kafka_broker import KafkaBroker

    broker = KafkaBroker(stack)
    return Consumer({**broker.security.client_properties(principal, broker.secure_address), **extra})


def test_stack_env_prints_the_principals_passwords_only_when_asked(kafka_stack: Settings) -> None:
    hidden, shown = _secure_env(kafka_stack, show_secrets=False), _secure_env(kafka_stack)
    assert hidden["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and hidden["KAFKA_SASL_USERNAME"] == "streaming"
    assert "KAFKA_SASL_PASSWORD" not in hidden and "KAFKA_PRODUCER_SASL_PASSWORD" not in hidden
    assert shown["KAFKA_SASL_PASSWORD"] and shown["KAFKA_PRODUCER_SASL_PASSWORD"]


def test_a_wrong_password_fails_within_30_seconds_with_one_line(
    secure: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakehouse.kafka.producer import EventProducer

    monkeypatch.setenv("KAFKA_PRODUCER_SASL_PASSWORD", "not-the-password")
    settings.cache_clear()
    began = time.monotonic()
    with pytest.raises(KafkaClientError) as refused:
        EventProducer(settings())
    assert time.monotonic() - began < 30
    message = str(refused.value)
    assert "\n" not in message
    assert "refused the credentials of 'producer'" in message and "KAFKA_PRODUCER_SASL_" in message
    assert "not-the-password" not in message


def test_a_principal_without_write_rights_gets_an_authorization_error(
    secure: Settings, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    from lakehouse.kafka.producer import EventProducer

    streaming = _secure_env(secure)
    monkeypatch.setenv("KAFKA_PRODUCER_SASL_USERNAME", "streaming")
    monkeypatch.setenv("KAFKA_PRODUCER_SASL_PASSWORD", streaming["KAFKA_SASL_PASSWORD"])
    settings.cache_clear()
    producer = EventProducer(settings())
    began = time.monotonic()
    with pytest.raises(KafkaClientError, match=r"Cluster authorization failed.*may not write the topic"):
        producer.send_raw(f"orders_{unique}", [(None, b"{}")])
    assert time.monotonic() - began < 30


def test_the_producer_principal_cannot_read(secure: Settings, unique: str) -> None:
    topic = f"orders_{unique}"
    assigned = _consumer(secure, "producer", **{"group.id": f"lakehouse-a{unique}", "enable.auto.commit": False})
    assigned.assign([TopicPartition(topic, 0, 0)])
    subscribed = _consumer(secure, "producer", **{"group.id": f"lakehouse-s{unique}", "auto.offset.reset": "earliest"})
    subscribed.subscribe([topic])
    refused = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}
    try:
        assert _first_error(assigned) in refused
        assert _first_error(subscribed) in refused
    finally:
        assigned.close()
        subscribed.close()


def _first_error(consumer: Consumer) -> int | None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is not None and message.error() is not None:
            return int(message.error().code())
    return None


def test_events_flow_from_the_producer_principal_through_spark_as_the_streaming_one(
    postgres_stack: Settings, secure: Settings, spark: Any, unique: str
) -> None:
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.spark.jobs import stream as stream_job

    events = list(generate("orders", 40, GeneratorOptions(seed=7)))
    with EventProducer(secure) as producer:
        assert producer.send_events("orders", events) == len(events)

    # in this process's Spark session: the Kafka source's SASL_SSL options come from the same settings as under
    # spark-submit, whose launch (settings passed through the environment) the golden-data suite and the chaos run test
    stream_job.main(["--available-now", "--event-type", "orders"])

    bronze = spark.read.format("delta").load(secure.storage.table_path("bronze", "orders"))
    assert bronze.count() == len(events)
    assert {row["topic"] for row in bronze.select("topic").distinct().collect()} == {f"orders_{unique}"}
