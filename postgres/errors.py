"""Errors of the serving layer (PostgreSQL DDL, migrations and loads)."""

from __future__ import annotations

from lakehouse.config.errors import LakehouseError


class ServingError(LakehouseError):
    """A migration or a load into PostgreSQL failed or was refused; the message names the table or file."""


class DataQualityError(ServingError):
    """Rows that must not reach the serving tables: duplicate keys, rows outside the interval, a failed check."""
