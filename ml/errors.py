"""Errors of the ml layer."""

from __future__ import annotations

from lakehouse.config.errors import LakehouseError


class TrainingDataError(LakehouseError):
    """The training set cannot give a model worth comparing: too few rows, a class missing. Waiting for more reviews
    (or a later end date) is the fix; retrying is not."""


class RegistryError(LakehouseError):
    """The model registry is not as the step expects: no training run for a run key, or an alias moved by someone
    else between the gate's evaluation and its promotion."""
