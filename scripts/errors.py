"""Errors of the local stack and of set-up; each message is one line that names the fix."""

from __future__ import annotations

from lakehouse.config.errors import LakehouseError, PrerequisiteError

__all__ = ["PrerequisiteError", "StackError"]


class StackError(LakehouseError):
    """A local-stack component failed to start, stop or answer."""
