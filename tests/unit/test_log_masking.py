"""Secrets masked at the source: every log record of a process, once an entry point installed the hook."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.config import log_masking

LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("connecting to postgresql://loader:pg-pass-1234@db.example.com:5432/lakehouse", "pg-pass-1234"),
        ("conf sasl.password=kafka-pass-5678 sasl.username=ingest", "kafka-pass-5678"),
        ('{"password": "json-pass-9012", "user": "x"}', "json-pass-9012"),
        (
            'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="jaas-pass-3456";',
            "jaas-pass-3456",
        ),
        ("Authorization: Bearer dapi0123456789abcdef", "dapi0123456789abcdef"),
        ("AWS_SECRET_ACCESS_KEY=aws-secret-7890 region=us-east-1", "aws-secret-7890"),
        ("token: tok-abcdef-1234", "tok-abcdef-1234"),
    ],
)
def test_secret_shapes_are_masked(text: str, secret: str) -> None:
    masked = log_masking.mask_text(text)
    assert secret not in masked
    assert log_masking.MASK in masked


def test_text_without_secrets_is_unchanged() -> None:
    for text in (
        "password authentication failed for user loader",
        "postgresql://postgres@127.0.0.1:5433/lakehouse",
        "stream_orders batch 3: 700 in, 588 to Silver",
    ):
        assert log_masking.mask_text(text) == text


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """A handler on a logger of its own, formatting like the entry points do."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("test_log_masking")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def test_installed_hook_masks_messages_arguments_tracebacks_and_environment_values(captured: io.StringIO) -> None:
    environ = {"SOME_SERVICE_PASSWORD": "env-value-secret-42", "LAKEHOUSE_PG_DSN": "postgresql://u:dsn-secret-77@h/db"}
    log_masking.install(environ)
    logger = logging.getLogger("test_log_masking")
    logger.info("settings: %s", {"dsn": environ["LAKEHOUSE_PG_DSN"]})
    logger.info("the service answered with %s", "env-value-secret-42 inside a sentence")
    logger.info("the bare password was %s", "dsn-secret-77")
    failure = RuntimeError("could not connect to postgresql://u:dsn-secret-77@h/db")
    logger.error("load failed", exc_info=(RuntimeError, failure, None))
    output = captured.getvalue()
    assert "env-value-secret-42" not in output and "dsn-secret-77" not in output
    assert output.count(log_masking.MASK) >= 4
    assert "RuntimeError: could not connect to postgresql://u:***@h/db" in output


def test_uvicorn_access_lines_keep_their_arguments(captured: io.StringIO) -> None:
    log_masking.install({})
    logger = logging.getLogger("uvicorn.access")
    record = logger.makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("c", "GET", "/x?token=abc-123456", "1.1", 200),
        None,
    )
    assert isinstance(record.args, tuple) and len(record.args) == 5
    assert record.args[2] == "/x?token=***" and record.args[4] == 200


def test_an_unreachable_serving_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AIRFLOW"))}
    env |= {
        "LAKEHOUSE_HOME": str(tmp_path / "home"),
        "LAKEHOUSE_PG_DSN": "postgresql://loader:cli-secret-31337@127.0.0.1:1/lakehouse",
        "COLUMNS": "200",
    }
    result = subprocess.run([LAKEHOUSE, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in output, output
    message = " ".join(result.stderr.split())  # the terminal's width may wrap the one message
    assert "loader@127.0.0.1:1/lakehouse" in message and "`lakehouse stack up postgres`" in message
    assert "cli-secret-31337" not in output
