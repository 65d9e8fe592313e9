"""Synthetic events of every event type, shaped like production traffic, with faults on demand.

``generate(event_type, count, options)`` yields exactly ``count`` messages as the producer sends them (key and
value bytes). Timestamps follow a daily cycle over ``options.days`` days. Event types with a hand-written model
(``registry.MODELS``: orders, customer_events, device_metrics) get realistic data, with tenants, customers and
products from the reference data in ``config/reference``; any other event type gets events derived from its JSON
Schema contracts (``generic.GenericModel``). Fractions of the messages can be faulty, each labelled in
``GeneratedMessage.fault`` (see ``FAULTS``) so tests know what the pipeline must do with it:

- ``duplicate``: a re-send of an earlier clean message (same event_id, identical bytes);
- malformed (``MALFORMED_FAULTS``): not JSON, invalid UTF-8, not a JSON object, larger than the event type's
  ``max_message_bytes``, an unknown ``event_type`` or ``schema_version``;
- invalid (``INVALID_FAULTS``): a JSON object breaking its contract (wrong type, null required field, value out
  of the contract's range) or a quality rule (``rule_break``, ``future_timestamp``).

Late events (``late=True``) are clean events whose timestamp lies hours or days before the others'.
Same seed and options, same bytes.
"""

from __future__ import annotations

from lakehouse.kafka.generator.base import (
    DUPLICATE,
    FAULTS,
    INVALID_FAULTS,
    MALFORMED_FAULTS,
    MAX_OVERSIZED,
    MAX_TENANTS,
    GeneratedMessage,
    GeneratorOptions,
    read_reference,
)
from lakehouse.kafka.generator.run import generate

__all__ = [
    "DUPLICATE",
    "FAULTS",
    "INVALID_FAULTS",
    "MALFORMED_FAULTS",
    "MAX_OVERSIZED",
    "MAX_TENANTS",
    "GeneratedMessage",
    "GeneratorOptions",
    "generate",
    "read_reference",
]
