"""The streams record every micro-batch in PostgreSQL: they check that they can before a Spark driver starts. A
database without the migrations, or a PostgreSQL that does not answer, is one line naming the fix, not a failed
first micro-batch with stack traces."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from lakehouse.config.settings import Settings, settings
from lakehouse.postgres.errors import ServingError

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stream_mains(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[list[str]], None]]:
    """Both streaming jobs' entry points, each failing the test if it gets as far as starting a Spark driver."""
    from lakehouse.spark.jobs import revenue_stream, stream

    def no_driver(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a Spark driver was started before the audit table was checked")

    for module in (stream, revenue_stream):
        monkeypatch.setattr(module, "get_spark", no_driver)
    return [stream.main, revenue_stream.main]


@pytest.fixture
def unmigrated_database(postgres_stack: Settings, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database of its own, with no migration run, as LAKEHOUSE_PG_DSN."""
    from lakehouse.scripts.postgres_server import ensure_database

    admin = postgres_stack.postgres_dsn("postgres")
    database = f"lakehouse_{unique}"
    ensure_database(admin, database)
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", postgres_stack.postgres_dsn(database))
    settings.cache_clear()
    yield database
    settings.cache_clear()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_a_database_without_migrations_is_one_line_naming_the_fix(
    unmigrated_database: str, stream_mains: list[Callable[[list[str]], None]]
) -> None:
    for main in stream_mains:
        with pytest.raises(ServingError) as error:
            main(["--available-now"])
        message = str(error.value)
        assert "\n" not in message
        assert message.startswith("lakehouse_meta.stream_batches does not exist in ")
        assert unmigrated_database in message
        assert message.endswith("run `lakehouse migrate` before starting the streams")


def test_a_postgres_that_does_not_answer_is_one_line_naming_the_fix(
    postgres_stack: Settings, monkeypatch: pytest.MonkeyPatch, stream_mains: list[Callable[[list[str]], None]]
) -> None:
    port = _closed_port()
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", f"postgresql://lakehouse@127.0.0.1:{port}/lakehouse?connect_timeout=5")
    settings.cache_clear()
    try:
        for main in stream_mains:
            with pytest.raises(ServingError) as error:
                main(["--available-now"])
            message = str(error.value)
            assert "\n" not in message
            assert message.startswith(
                f"the streams record each batch in PostgreSQL and cannot reach lakehouse@127.0.0.1:{port}/lakehouse ("
            )
            assert message.endswith("start it (`lakehouse stack up postgres`) or set LAKEHOUSE_PG_DSN")
    finally:
        settings.cache_clear()
