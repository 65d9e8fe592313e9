"""One ``generate()`` call: draws each message's category (clean, late, duplicate, malformed, invalid), asks the
event type's model for the event and turns it into the message's bytes."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

from lakehouse.config.errors import ConfigError
from lakehouse.config.specs import EventTypeSpec
from lakehouse.config.specs import event_type as load_event_type
from lakehouse.kafka.errors import GeneratorError
from lakehouse.kafka.generator.base import (
    DAY_MS,
    DUPLICATE,
    HOUR_MS,
    MALFORMED_FAULTS,
    MAX_OVERSIZED,
    Clock,
    GeneratedMessage,
    GeneratorOptions,
    Model,
    dumps,
    picker,
)
from lakehouse.kafka.generator.registry import model_for

log = logging.getLogger(__name__)

_MALFORMED_WEIGHTS = (0.3, 0.2, 0.15, 0.005, 0.15, 0.195)
# how many earlier clean messages duplicates are drawn from
_RECENT = 2000


def generate(
    event_type: str | EventTypeSpec, count: int, options: GeneratorOptions | None = None
) -> Iterator[GeneratedMessage]:
    """Exactly ``count`` messages of one event type (duplicates included), in event-time order.

    The event type's hand-written model makes them if it has one (see ``registry.MODELS``), else the generic
    model derived from its contracts. A problem with the options, the event type or its contracts raises
    GeneratorError here, before the first message."""
    spec = event_type if isinstance(event_type, EventTypeSpec) else _spec(event_type)
    opts = options or GeneratorOptions()
    if count < 0:
        raise GeneratorError(f"count must be >= 0, got {count}")
    model_class = model_for(spec)
    log.debug("generating %d %s message(s) with %s and %s", count, spec.name, model_class.__name__, opts)
    rng = random.Random(opts.seed)
    return _Run(spec, opts, rng, model_class(spec, opts, rng)).messages(count)


def _spec(name: str) -> EventTypeSpec:
    try:
        return load_event_type(name)
    except ConfigError as exc:
        raise GeneratorError(str(exc)) from exc


class _Run:
    """Draws each message's category, then builds it."""

    def __init__(self, spec: EventTypeSpec, options: GeneratorOptions, rng: random.Random, model: Model) -> None:
        self.spec, self.options, self.rng, self.model = spec, options, rng, model
        self.key_field = spec.kafka_key
        self.unknown_types = [t for t in model.unknown_event_types if t not in spec.event_types]
        self.malformed = picker(rng, MALFORMED_FAULTS, _MALFORMED_WEIGHTS)
        self.oversized = 0

    def messages(self, count: int) -> Iterator[GeneratedMessage]:
        opts, rng, model = self.options, self.rng, self.model
        clock = Clock(rng, opts, count)
        tenants = model.tenants
        dup_end = opts.duplicate_fraction
        malformed_end = dup_end + opts.malformed_fraction
        invalid_end = malformed_end + opts.invalid_fraction
        late_end = invalid_end + opts.late_fraction
        recent: list[GeneratedMessage] = []
        key, rand, randrange = self._key, rng.random, rng.randrange
        for index in range(count):
            ms = clock.at(index)
            draw = rand()
            if draw < dup_end and recent:
                original = recent[int(rand() * len(recent))]
                yield GeneratedMessage(original.key, original.value, original.event, DUPLICATE, original.late)
                continue
            tenant = tenants[int(rand() * len(tenants))]
            if dup_end <= draw < malformed_end:
                yield self._malformed(tenant, ms, clock.iso(ms))
                continue
            if malformed_end <= draw < invalid_end:
                fault = rng.choice(model.invalid_faults)
                event = model.invalid(fault, tenant, ms, clock.iso(ms))
                yield GeneratedMessage(key(event), dumps(event), event, fault)
                continue
            late = invalid_end <= draw < late_end
            if late:
                ms -= randrange(2 * HOUR_MS, 3 * DAY_MS)
            event = model.clean(tenant, ms, clock.iso(ms), remember=True)
            message = GeneratedMessage(key(event), dumps(event), event, None, late)
            if len(recent) < _RECENT:
                recent.append(message)
            else:
                recent[int(rand() * _RECENT)] = message
            yield message

    def _key(self, event: dict[str, Any]) -> bytes | None:
        key = event.get(self.key_field)
        return None if key is None else str(key).encode()

    def _malformed(self, tenant: str, ms: int, ts: str) -> GeneratedMessage:
        rng, model, spec = self.rng, self.model, self.spec
        fault = self.malformed()
        if fault == "oversized" and self.oversized >= MAX_OVERSIZED:
            fault = "malformed_json"
        if fault == "unknown_event_type" and not self.unknown_types:
            fault = "unknown_schema_version"
        event = model.clean(tenant, ms, ts, remember=False)
        key = self._key(event)
        if fault == "malformed_json":
            text = dumps(event)
            # cut off mid-write, or a Python repr (single quotes, None) instead of JSON
            value = text[: rng.randrange(1, len(text) - 1)] if rng.random() < 0.5 else repr(event).encode()
            return GeneratedMessage(key, value, None, fault)
        if fault == "invalid_utf8":
            name, raw = model.latin1(event)
            value = dumps({**event, name: "\x00"}).replace(b'"\\u0000"', b'"' + raw + b'"', 1)
            return GeneratedMessage(key, value, None, fault)
        if fault == "not_an_object":
            wrapped: Any = [event] if rng.random() < 0.5 else dumps(event).decode()  # array, or JSON in a string
            return GeneratedMessage(key, dumps(wrapped), None, fault)
        if fault == "oversized":
            self.oversized += 1
            event["padding"] = "x" * (spec.max_message_bytes + 1024)
        elif fault == "unknown_event_type":
            event["event_type"] = rng.choice(self.unknown_types)
        else:
            event["schema_version"] = max(spec.versions) + 1
        return GeneratedMessage(key, dumps(event), event, fault)
