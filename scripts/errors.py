"""Errors of the local stack and of set-up; each message is one line that names the fix."""

from __future__ import annotations

from lakehouse.config.errors import LakehouseError, PrerequisiteError

__all__ = ["BenchError", "PrerequisiteError", "StackError"]


class StackError(LakehouseError):
    """A local-stack component failed to start, stop or answer."""


class BenchError(LakehouseError):
    """A benchmark could not measure what it set out to: a process it started died, or a run could not finish."""
