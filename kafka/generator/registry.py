"""Which model makes the events of an event type: a hand-written one (``MODELS``) for realistic data, else the
generic model derived from the event type's JSON Schema contracts.

To give an event type realistic data, write ``kafka/generator/<event_type>.py`` with a ``Model`` subclass (see
``orders.py``) and add it to ``MODELS`` below; docs/onboarding.md walks through it.
"""

from __future__ import annotations

from lakehouse.config.specs import EventTypeSpec
from lakehouse.kafka.generator.base import Model
from lakehouse.kafka.generator.customer_events import CustomerEvents
from lakehouse.kafka.generator.device_metrics import DeviceMetrics
from lakehouse.kafka.generator.generic import GenericModel
from lakehouse.kafka.generator.orders import Orders

MODELS: dict[str, type[Model]] = {
    "orders": Orders,
    "customer_events": CustomerEvents,
    "device_metrics": DeviceMetrics,
}


def model_for(spec: EventTypeSpec) -> type[Model]:
    """The hand-written model of the event type, or ``GenericModel`` if it has none."""
    return MODELS.get(spec.name, GenericModel)
