"""Publishing to Kafka: synthetic or given events of an event type, the lines of a file, or raw key/value pairs.

The producer is idempotent (``enable.idempotence``, ``acks=all``), batches with lz4, and reports every
delivery failure: each ``send_*`` call waits for its messages and returns how many the broker acknowledged;
leaving the ``with`` block raises KafkaClientError if any message of the producer's life was not delivered.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import ClusterMetadata

from lakehouse.config.settings import Settings, masked_mapping
from lakehouse.config.specs import EventTypeSpec
from lakehouse.config.specs import event_type as load_event_type
from lakehouse.kafka.admin import (
    AuthFailuresAtDebug,
    ClientErrors,
    client_config,
    describe,
    fetch_metadata,
    metadata_error,
)
from lakehouse.kafka.errors import KafkaClientError
from lakehouse.kafka.generator import GeneratedMessage

log = logging.getLogger(__name__)
log.addFilter(AuthFailuresAtDebug())

PRODUCER_DEFAULTS: dict[str, str] = {
    "enable.idempotence": "true",
    "acks": "all",
    "linger.ms": "20",
    "compression.type": "lz4",
    "batch.num.messages": "10000",
    "batch.size": "1000000",
    # Far above the 1 MB a message may have (max_message_bytes), so that oversized messages reach the pipeline,
    # which dead-letters them; the local broker accepts 16 MiB (a managed Kafka may refuse them first).
    "message.max.bytes": "16000000",
    "queue.buffering.max.messages": "200000",
}
FLUSH_TIMEOUT_S = 120.0
TOPIC_WAIT_S = 5.0
_PROGRESS_EVERY = 500


def producer_config(settings: Settings, extra_config: dict[str, str] | None = None) -> dict[str, Any]:
    """The producer's librdkafka properties: the defaults, then the environment's client and producer
    properties, then ``extra_config``."""
    return {**PRODUCER_DEFAULTS, **client_config(settings), **settings.kafka.producer, **(extra_config or {})}


class _Deliveries:
    """Delivery-report counter of one ``send_*`` call (the callback runs inside poll/flush)."""

    __slots__ = ("delivered", "failed", "first_error")

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None

    def __call__(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.fail(error.str())

    def fail(self, reason: str, count: int = 1) -> None:
        self.failed += count
        if self.first_error is None:
            self.first_error = reason


def _fatal_error(exc: BaseException) -> KafkaException | None:
    """The client's fatal error behind ``exc``. confluent-kafka raises it from ``poll``/``flush`` as a
    ``KafkaException``; when it is raised while delivery reports are being served, Python reports the next report's
    callback as a ``SystemError`` ("returned a result with an exception set") caused by it."""
    if isinstance(exc, KafkaException):
        return exc
    cause = exc.__cause__ or exc.__context__
    return cause if isinstance(cause, KafkaException) else None


class EventProducer:
    """An idempotent Kafka producer for this environment; use it as a context manager.

    ``extra_config`` (librdkafka properties) overrides the defaults and the environment's ``kafka.client``.
    """

    def __init__(self, settings: Settings, extra_config: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.bootstrap_servers = settings.kafka.bootstrap_servers
        config = producer_config(settings, extra_config)
        log.debug("producer config: %s", masked_mapping({k: str(v) for k, v in config.items()}))
        self._errors = ClientErrors()
        self._user = config.get("sasl.username")
        self._producer = Producer({**config, "error_cb": self._errors}, logger=log)
        self._failed = 0
        self._first_error: str | None = None
        self._failed_topic: str | None = None
        self._closed = False
        self._topic_metadata(None)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            # already failing: deliver what we can, but let the original exception propagate
            self._closed = True
            self._producer.flush(10)

    def close(self) -> None:
        """Deliver what is queued; KafkaClientError if any message of this producer was not delivered."""
        if self._closed:
            return
        self._closed = True
        remaining = self._producer.flush(FLUSH_TIMEOUT_S)
        if remaining:
            self._record_failure(self._failed_topic or "?", remaining, "not delivered before the flush timeout")
        if self._failed:
            raise KafkaClientError(
                f"{self._failed} message(s) were not delivered to topic {self._failed_topic!r} on "
                f"{self.bootstrap_servers}; first error: {self._first_error}. Check that the broker is up "
                "(`lakehouse stack status`) and that the topic exists and accepts the messages' size"
            )

    def send_events(
        self,
        event_type: str | EventTypeSpec,
        events: Iterable[GeneratedMessage | dict[str, Any]],
        rate: float = 0,
        total: int | None = None,
    ) -> int:
        """Send events to the event type's topic, keyed by its ``kafka_key``; returns how many were delivered.

        Dicts are serialized as compact JSON; GeneratedMessages are sent as they are (their bytes and key).
        ``rate`` > 0 limits the pace to that many messages per second; with ``total`` and a terminal a
        progress bar is shown.
        """
        spec = event_type if isinstance(event_type, EventTypeSpec) else load_event_type(event_type)
        key_field = spec.kafka_key

        def pairs() -> Iterator[tuple[bytes | None, bytes]]:
            for event in events:
                if isinstance(event, GeneratedMessage):
                    yield event.key, event.value
                else:
                    key = event.get(key_field)
                    value = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
                    yield (None if key is None else str(key).encode()), value

        return self._send(spec.topic, pairs(), rate, total, what=f"{spec.name} events")

    def send_file(self, topic: str, path: Path | str, key_field: str | None = None, rate: float = 0) -> int:
        """Send each line of a file as one message, byte for byte; returns the count delivered.

        Only the line ending (``\\n`` or ``\\r\\n``) is removed; nothing is decoded. An empty last line is
        ignored; empty lines elsewhere become empty messages. Without ``key_field`` messages have no key; with it,
        a line's key is that field of the JSON object on the line (so a key's lines stay in order on one
        partition), and lines that are not JSON objects or lack the field are sent without key (a warning counts
        them). ``rate`` > 0 limits the pace to that many messages per second.
        """
        file = Path(path)
        if not file.is_file():
            raise KafkaClientError(f"cannot send {file} to topic {topic!r}: no such file")
        unkeyed = 0

        def lines() -> Iterator[bytes]:
            with file.open("rb") as handle:
                previous: bytes | None = None
                for line in handle:
                    if previous is not None:
                        yield previous
                    previous = line[:-2] if line.endswith(b"\r\n") else line.removesuffix(b"\n")
                if previous:
                    yield previous

        def messages() -> Iterator[tuple[bytes | None, bytes]]:
            nonlocal unkeyed
            for value in lines():
                key = None if key_field is None else _json_key(value, key_field)
                if key is None and key_field is not None:
                    unkeyed += 1
                yield key, value

        delivered = self._send(topic, messages(), rate, None, what=f"lines of {file}")
        if unkeyed:
            log.warning(
                "%d line(s) of %s are not JSON objects with a %r field, so their messages to topic %s have no key",
                unkeyed,
                file,
                key_field,
                topic,
            )
        return delivered

    def send_raw(self, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
        """Send (key, value) pairs as they are; returns how many were delivered."""
        return self._send(topic, messages, 0, None, what="messages")

    def _send(
        self,
        topic: str,
        messages: Iterable[tuple[bytes | None, bytes]],
        rate: float,
        total: int | None,
        what: str,
    ) -> int:
        if self._closed:
            raise KafkaClientError(f"cannot send to topic {topic!r}: the producer is closed")
        self._require_topic(topic)
        deliveries = _Deliveries()
        produce, poll = self._producer.produce, self._producer.poll
        interval = 1.0 / rate if rate > 0 else 0.0
        started = time.monotonic()
        sent = 0
        progress = _progress(what, topic, total)
        try:
            for key, value in messages:
                if interval:
                    ahead = started + sent * interval - time.monotonic()
                    if ahead > 0.001:
                        poll(0)
                        time.sleep(ahead)
                while True:
                    try:
                        produce(topic, value, key, on_delivery=deliveries)
                        break
                    except BufferError:
                        poll(0.05)  # local queue full: wait for deliveries to make room
                    except KafkaException as exc:  # rejected before queuing, e.g. larger than message.max.bytes
                        deliveries.fail(describe(exc))
                        break
                sent += 1
                if sent % _PROGRESS_EVERY == 0:
                    poll(0)
                    if progress is not None:
                        progress.update(sent)
            remaining = self._producer.flush(FLUSH_TIMEOUT_S)
        # fatal, from poll or flush: e.g. an idempotent producer refused its id (see _fatal_error)
        except (KafkaException, SystemError) as exc:
            fatal = _fatal_error(exc)
            if fatal is None:
                raise
            self._closed = True
            raise KafkaClientError(
                f"the producer stopped sending to topic {topic!r} on {self.bootstrap_servers}: {describe(fatal)}; an "
                "authorization error means the producing principal may not write the topic (check its ACLs)"
            ) from exc
        finally:
            if progress is not None:
                progress.stop(sent)
        if remaining:
            deliveries.fail(f"not delivered within {FLUSH_TIMEOUT_S:.0f}s", count=remaining)
        elapsed = time.monotonic() - started
        log.info(
            "sent %d %s to topic %s in %.1fs (%.0f msg/s)%s",
            deliveries.delivered,
            what,
            topic,
            elapsed,
            deliveries.delivered / elapsed if elapsed else 0.0,
            f"; {deliveries.failed} failed, first error: {deliveries.first_error}" if deliveries.failed else "",
        )
        if deliveries.failed:
            self._record_failure(topic, deliveries.failed, deliveries.first_error or "unknown error")
        return deliveries.delivered

    def _record_failure(self, topic: str, count: int, error: str) -> None:
        if self._first_error is None:
            self._first_error, self._failed_topic = error, topic
        self._failed += count

    def _topic_metadata(self, topic: str | None) -> ClusterMetadata:
        try:
            return fetch_metadata(self._producer, self._errors, topic)
        except KafkaException as exc:
            self._closed = True
            raise metadata_error(self.settings, exc, self._errors, self._user) from exc

    def _require_topic(self, topic: str) -> None:
        deadline = time.monotonic() + TOPIC_WAIT_S
        while True:
            found = self._topic_metadata(topic).topics.get(topic)
            if found is not None and found.error is None:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.25)  # a topic created a moment ago may not be in the metadata yet
        raise KafkaClientError(
            f"topic {topic!r} does not exist on {self.bootstrap_servers}; create the event types' topics with "
            "`lakehouse topics` (or create this topic with your Kafka tooling)"
        )


def _json_key(value: bytes, field: str) -> bytes | None:
    """``field`` of the JSON object ``value`` as a message key (its text, as ``send_events`` keys), or None."""
    try:
        parsed = json.loads(value)
    except ValueError:  # not JSON, or not UTF-8
        return None
    key = parsed.get(field) if isinstance(parsed, dict) else None
    return None if key is None else str(key).encode()


class _ProgressBar:
    """A rich progress bar on the terminal."""

    def __init__(self, description: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._progress = Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        )
        self._task = self._progress.add_task(description, total=total)
        self._progress.start()

    def update(self, done: int) -> None:
        self._progress.update(self._task, completed=done)

    def stop(self, done: int) -> None:
        self.update(done)
        self._progress.stop()


def _progress(what: str, topic: str, total: int | None) -> _ProgressBar | None:
    """A progress bar when the total is known and stdout is a terminal (quiet in logs and pipes)."""
    if total is None or not sys.stdout.isatty():
        return None
    return _ProgressBar(f"{what} -> {topic}", total)
