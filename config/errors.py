"""The error every lakehouse failure derives from, and configuration errors."""

from __future__ import annotations


class LakehouseError(Exception):
    """A failure the user can act on; its message names the file, key, topic or table and the fix."""


class ConfigError(LakehouseError):
    """Configuration is missing or invalid. Lists every problem found, each with its file and key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        joined = "\n  - ".join(problems)
        super().__init__(f"invalid configuration ({len(problems)} problem(s)):\n  - {joined}")


class ServiceUnavailableError(LakehouseError):
    """A service the step needs (PostgreSQL, Kafka, the object store) could not be reached or dropped the
    connection; nothing was changed, and the same step may succeed once the service is back (a scheduler retries
    it)."""


class PrerequisiteError(LakehouseError):
    """Something the machine must provide is missing (Java, Maven, a free port, a reachable registry)."""
