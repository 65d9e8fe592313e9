"""Errors of the serving layer (PostgreSQL DDL, migrations and loads)."""

from __future__ import annotations

from lakehouse.config.errors import LakehouseError, ServiceUnavailableError


class ServingError(LakehouseError):
    """A migration or a load into PostgreSQL failed or was refused; the message names the table or file."""


class ServingUnavailableError(ServingError, ServiceUnavailableError):
    """PostgreSQL could not be reached or dropped the connection during a load (a restart, a crash, a failover);
    the target was not changed, and a retry may succeed."""


class DataQualityError(ServingError):
    """Rows that must not reach the serving tables: duplicate keys, rows outside the interval, a failed check."""
