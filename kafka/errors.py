"""Errors of the Kafka layer; each message names the topic (or file) and the fix."""

from __future__ import annotations

from lakehouse.config.errors import LakehouseError


class KafkaClientError(LakehouseError):
    """The broker is unreachable, a topic is missing, or messages were not delivered."""


class GeneratorError(LakehouseError):
    """The synthetic event generator was asked for something it cannot make (unknown type, bad options)."""
