"""Settings of the BI tool the local stack runs on the serving schema: Apache Superset."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SupersetSettings(BaseModel):
    """Apache Superset on this machine's loopback, on ``port``: its own metadata in the database
    ``metadata_database`` of the stack's PostgreSQL, and one database connection, ``connection_name``, to the serving
    database that logs in as ``reader_role``, a login role the stack creates as a member of ``bi_reader``. Chart data
    is cached on disk for ``data_cache_seconds``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int = Field(default=8088, ge=1, le=65535)
    metadata_database: str = Field(default="superset", min_length=1)
    reader_role: str = Field(default="superset_bi", pattern=r"^[a-z_][a-z0-9_]*$")
    connection_name: str = Field(default="lakehouse serving", min_length=1)
    # how long Superset keeps a chart's data (0: not at all); a dashboard's auto-refresh always reads afresh
    data_cache_seconds: int = Field(default=300, ge=0)

    @property
    def url(self) -> str:
        """Where the web UI and the REST API answer."""
        return f"http://127.0.0.1:{self.port}"
