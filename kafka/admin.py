"""Topic administration: every event type's topic, created with the environment's partitions and replication."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from lakehouse.config.settings import Settings, masked_mapping
from lakehouse.config.specs import EventTypeSpec, load_event_types
from lakehouse.kafka.errors import KafkaClientError

log = logging.getLogger(__name__)

METADATA_TIMEOUT_S = 10.0
# a refused or unresolvable broker fails in milliseconds and librdkafka then reports every broker down: after this
# long of that, the metadata request stops waiting for the rest of METADATA_TIMEOUT_S
ALL_DOWN_GRACE_S = 2.0
METADATA_ATTEMPT_S = 0.5
CREATE_TIMEOUT_S = 30.0


def client_config(settings: Settings) -> dict[str, str]:
    """librdkafka properties every client of this environment needs: bootstrap servers plus security/SASL."""
    return {"bootstrap.servers": settings.kafka.bootstrap_servers, **settings.kafka.client}


class AuthFailuresAtDebug(logging.Filter):
    """librdkafka logs every failed login at error level, several a second; the client's error names the failure
    once (``metadata_error``), so these lines are debug ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "SASL authentication error" not in record.getMessage():
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


log.addFilter(AuthFailuresAtDebug())


class ClientErrors:
    """librdkafka's ``error_cb`` (called from ``poll``): keeps the first authentication failure, and whether every
    broker was last reported down."""

    __slots__ = ("all_brokers_down", "authentication")

    def __init__(self) -> None:
        self.authentication: str | None = None
        self.all_brokers_down = False

    def __call__(self, error: KafkaError) -> None:
        if error.code() == KafkaError._AUTHENTICATION and self.authentication is None:
            self.authentication = error.str()
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_brokers_down = True


def fetch_metadata(client: AdminClient | Producer, errors: ClientErrors, topic: str | None = None) -> ClusterMetadata:
    """``list_topics`` for up to METADATA_TIMEOUT_S, or ALL_DOWN_GRACE_S once librdkafka reports every broker down
    (``errors`` is the client's error callback); the last KafkaException when it gives up."""
    started = time.monotonic()
    errors.all_brokers_down = False  # only what this request sees: the client may have been down and back before
    while True:
        remaining = METADATA_TIMEOUT_S - (time.monotonic() - started)
        try:
            return client.list_topics(topic, timeout=max(0.01, min(METADATA_ATTEMPT_S, remaining)))
        except KafkaException:
            client.poll(0)  # serves the error callback
            elapsed = time.monotonic() - started
            if elapsed >= METADATA_TIMEOUT_S or (errors.all_brokers_down and elapsed >= ALL_DOWN_GRACE_S):
                raise


def admin_client(settings: Settings, errors: ClientErrors | None = None) -> AdminClient:
    """An AdminClient of this environment whose librdkafka logs go to Python logging, not stderr."""
    config: dict[str, Any] = {**client_config(settings), "error_cb": errors or ClientErrors()}
    return AdminClient(config, logger=log)


def unreachable(settings: Settings, detail: str) -> KafkaClientError:
    """The one-line error for a broker that does not answer."""
    return KafkaClientError(
        f"Kafka at {settings.kafka.bootstrap_servers} did not answer ({detail}); start the local broker with "
        f"`lakehouse stack up kafka`, or fix kafka.bootstrap_servers/kafka.client of environment {settings.name!r}"
    )


def metadata_error(settings: Settings, exc: KafkaException, errors: ClientErrors, user: str | None) -> KafkaClientError:
    """The one-line error for metadata that did not come (``fetch_metadata`` has served ``errors``, the client's error
    callback): the broker refused the credentials, or did not answer."""
    if errors.authentication is None:
        return unreachable(settings, describe(exc))
    return KafkaClientError(
        f"Kafka at {settings.kafka.bootstrap_servers} refused the credentials of {user or '<no user>'!r} "
        f"({errors.authentication}); check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (KAFKA_PRODUCER_SASL_* for "
        f"the producer), or kafka.client of environment {settings.name!r}"
    )


def cluster_metadata(
    settings: Settings, admin: AdminClient | None = None, errors: ClientErrors | None = None
) -> ClusterMetadata:
    """Brokers and topics of the cluster; KafkaClientError naming the fix when it is unreachable or refuses the
    credentials (``errors``: the error callback of ``admin``)."""
    errors = errors or ClientErrors()
    client = admin or admin_client(settings, errors)
    try:
        metadata = fetch_metadata(client, errors)
    except KafkaException as exc:
        raise metadata_error(settings, exc, errors, settings.kafka.client.get("sasl.username")) from exc
    if not metadata.brokers:
        raise unreachable(settings, "no brokers in metadata")
    return metadata


def ensure_topics(
    settings: Settings, specs: Mapping[str, EventTypeSpec] | Iterable[EventTypeSpec] | None = None
) -> dict[str, bool]:
    """Create the topic of every event type that lacks one; returns topic -> True (created) / False (existed).

    Idempotent: existing topics are left as they are (a partition count that differs from the configuration
    is logged, never changed).
    """
    chosen = load_event_types() if specs is None else specs
    spec_list = list(chosen.values()) if isinstance(chosen, Mapping) else list(chosen)
    topics = sorted({spec.topic for spec in spec_list})
    kafka = settings.kafka
    log.debug("admin client config: %s", masked_mapping(client_config(settings)))
    errors = ClientErrors()
    admin = admin_client(settings, errors)
    existing = cluster_metadata(settings, admin, errors).topics

    result: dict[str, bool] = {}
    for topic in topics:
        if topic in existing:
            result[topic] = False
            partitions = len(existing[topic].partitions)
            if partitions != kafka.topic_partitions:
                log.warning(
                    "topic %s exists with %d partition(s), the configuration says %d; left as is",
                    topic,
                    partitions,
                    kafka.topic_partitions,
                )
    missing = [t for t in topics if t not in result]
    if missing and not kafka.create_topics:
        raise KafkaClientError(
            f"topic(s) {', '.join(missing)} do not exist on {kafka.bootstrap_servers}, and environment "
            f"{settings.name!r} does not create topics (kafka.create_topics: false; Azure Event Hubs cannot create "
            "them through the Kafka AdminClient): create them as event hubs, or set kafka.create_topics"
        )
    if missing:
        new = [
            NewTopic(t, num_partitions=kafka.topic_partitions, replication_factor=kafka.topic_replication)
            for t in missing
        ]
        futures = admin.create_topics(new, operation_timeout=CREATE_TIMEOUT_S, request_timeout=CREATE_TIMEOUT_S)
        for topic, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                if (
                    exc.args
                    and isinstance(exc.args[0], KafkaError)
                    and (exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS)
                ):
                    result[topic] = False  # created concurrently by another client
                    continue
                raise KafkaClientError(
                    f"creating topic {topic!r} ({kafka.topic_partitions} partition(s), replication "
                    f"{kafka.topic_replication}) on {kafka.bootstrap_servers} failed: {describe(exc)}; check the "
                    f"broker's permissions and that kafka.topic_replication <= the number of brokers"
                ) from exc
            result[topic] = True
            log.info(
                "created topic %s (%d partition(s), replication %d)",
                topic,
                kafka.topic_partitions,
                kafka.topic_replication,
            )
    return {topic: result[topic] for topic in topics}


def describe(exc: KafkaException) -> str:
    """The librdkafka error text of a KafkaException."""
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
