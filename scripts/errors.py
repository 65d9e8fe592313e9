"""Errors of the local stack and of set-up; each message is one line that names the fix."""

from __future__ import annotations

from lakehouse.config.errors import LakehouseError


class PrerequisiteError(LakehouseError):
    """Something the machine must provide is missing (Java, Maven, a free port, a reachable registry)."""


class StackError(LakehouseError):
    """A local-stack component failed to start, stop or answer."""
