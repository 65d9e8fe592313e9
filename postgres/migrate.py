"""Versioned DDL: ``postgres/ddl/V<number>__<name>.sql`` applied in version order, each once, each in its own
transaction, recorded with its SHA-256 in ``lakehouse_meta.schema_migrations`` (outside the serving schema, so
BI roles cannot see it). An applied file must never change: a new checksum stops the migration.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from lakehouse.config.settings import mask
from lakehouse.postgres.errors import ServingError

log = logging.getLogger(__name__)

DDL_DIR = Path(__file__).parent / "ddl"
_FILE_NAME = re.compile(r"^V(?P<version>\d+)__(?P<description>[a-z0-9_]+)\.sql$")
# Key of the session-level advisory lock that serialises concurrent migrations of one database.
_LOCK_KEY = 0x6C616B65686F7573  # "lakehous"
_BOOTSTRAP = b"""
CREATE SCHEMA IF NOT EXISTS lakehouse_meta;
REVOKE ALL ON SCHEMA lakehouse_meta FROM PUBLIC;
CREATE TABLE IF NOT EXISTS lakehouse_meta.schema_migrations (
    version      integer     PRIMARY KEY,
    name         text        NOT NULL,
    checksum     text        NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    applied_by   text        NOT NULL DEFAULT current_user,
    execution_ms integer     NOT NULL
);
"""


@dataclass(frozen=True)
class Migration:
    """One DDL file: its version, file name, path and the SHA-256 of its bytes."""

    version: int
    name: str
    path: Path
    checksum: str

    def script(self) -> bytes:
        """The file's SQL (bytes: psycopg sends it as one simple-protocol script)."""
        return self.path.read_bytes()


def where(dsn: str) -> str:
    """``user@host:port/dbname`` of a DSN (URI or key=value): safe to log, never holds the password."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return mask(dsn) if "://" in dsn else "<unparsable dsn>"
    return f"{parts.get('user', '')}@{parts.get('host', '')}:{parts.get('port', '')}/{parts.get('dbname', '')}"


def migration_files(directory: Path = DDL_DIR) -> list[Migration]:
    """The DDL files of ``directory`` in version order (numeric: V2 before V10); ServingError on bad names."""
    problems: list[str] = []
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            problems.append(f"{path}: name must be V<number>__<lower_snake_description>.sql")
            continue
        version = int(match["version"])
        if version in found:
            problems.append(f"{path}: version {version} is also used by {found[version].path.name}; renumber it")
            continue
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        found[version] = Migration(version, path.name, path, checksum)
    if problems:
        raise ServingError("invalid migration files:\n  - " + "\n  - ".join(problems))
    return [found[v] for v in sorted(found)]


def _pending(files: list[Migration], applied: dict[int, tuple[str, str]], directory: Path) -> list[Migration]:
    """Files not applied yet, after checking that every applied one is unchanged."""
    by_version = {m.version: m for m in files}
    for version, (name, checksum) in sorted(applied.items()):
        current = by_version.get(version)
        if current is None:
            log.warning(
                "migration %s (version %d) is applied but not in %s: the database is newer than this code",
                name,
                version,
                directory,
            )
        elif current.name != name or current.checksum != checksum:
            raise ServingError(
                f"{current.path}: was applied as {name} with sha256 {checksum[:12]}..., but the file now is "
                f"{current.name} with sha256 {current.checksum[:12]}...: applied migrations are immutable; "
                f"restore the file and put the change in a new V{max(by_version, default=0) + 1:03d}__<description>.sql"
            )
    pending = [m for m in files if m.version not in applied]
    latest = max(applied, default=0)
    late = [m.name for m in pending if m.version < latest]
    if late:
        raise ServingError(
            f"{directory}: {late} would run after the already applied version {latest}; renumber them above {latest}"
        )
    return pending


def migrate(dsn: str, directory: Path = DDL_DIR) -> list[str]:
    """Apply the pending DDL files to the database of ``dsn``; returns the names of the files applied."""
    files = migration_files(directory)
    try:
        conn = psycopg.connect(dsn, autocommit=True, application_name="lakehouse-migrate")
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServingError(
            f"PostgreSQL at {where(dsn)} did not accept the connection ({reason}): start the local one with "
            "`lakehouse stack up postgres`, or point LAKEHOUSE_PG_DSN at a running server"
        ) from exc
    with conn:
        # held until the connection closes; a second migrate() of this database waits here, then finds
        # nothing pending
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        conn.execute(_BOOTSTRAP)
        rows = conn.execute("SELECT version, name, checksum FROM lakehouse_meta.schema_migrations").fetchall()
        pending = _pending(files, {version: (name, checksum) for version, name, checksum in rows}, directory)
        for migration in pending:
            _apply(conn, migration)
    if pending:
        log.info("migrated %s: applied %s", where(dsn), ", ".join(m.name for m in pending))
    else:
        log.info("migrated %s: nothing pending", where(dsn))
    return [m.name for m in pending]


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    began = time.perf_counter()
    try:
        with conn.transaction():
            conn.execute(migration.script())
            conn.execute(
                "INSERT INTO lakehouse_meta.schema_migrations (version, name, checksum, execution_ms) "
                "VALUES (%s, %s, %s, %s)",
                (migration.version, migration.name, migration.checksum, round((time.perf_counter() - began) * 1000)),
            )
    except psycopg.Error as exc:
        raise ServingError(
            f"{migration.path}: failed and was rolled back ({type(exc).__name__}: {exc}); "
            "fix the file (it is not applied yet) and run `lakehouse migrate` again"
        ) from exc
    log.info("applied %s in %.0f ms", migration.name, (time.perf_counter() - began) * 1000)
