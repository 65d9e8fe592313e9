"""Errors of the orchestration layer: each message names what to fix."""

from __future__ import annotations

from lakehouse.config.errors import LakehouseError


class BundleTargetError(LakehouseError):
    """A Databricks asset bundle target that the bundle does not define."""


class WorkspaceAccessError(LakehouseError):
    """The Databricks workspace cannot be asked: its host or token is missing, unreachable or refused."""
