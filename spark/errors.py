"""Errors of the Spark layer."""

from __future__ import annotations

from lakehouse.config.errors import LakehouseError


class SparkJobError(LakehouseError):
    """A Spark job failed or was asked to do something impossible; the message names the table or query."""


class SparkUnavailableError(SparkJobError):
    """No Spark to run on (the Spark Connect server does not answer): an infrastructure failure, worth a retry."""
