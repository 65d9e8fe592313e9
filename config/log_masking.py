"""Secrets masked at the source: one hook on Python's logging, installed by every entry point (the CLI, the Spark
jobs, the Airflow tasks, the model server), rewrites each log record before any handler sees it.

It masks:

- the password of a URL or DSN (``postgresql://user:***@host``);
- the value after a secret-looking key (``password=``, ``"token": ``, ``sasl.password=``, ``secret_access_key=``,
  a JAAS config's ``password="..."``) and after ``Bearer``;
- every value, wherever it appears, of an environment variable whose name looks secret (``*PASSWORD*``,
  ``*SECRET*``, ``*TOKEN*``, ``*CREDENTIAL*``, ``*JAAS*``), and of any value passed to ``register``.

The JVM's own logs are masked by Spark's redaction settings instead (``lakehouse.spark.session``)."""

from __future__ import annotations

import logging
import os
import re
import threading
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
SECRET_NAME = re.compile(r"password|passwd|secret|token|credential|jaas|fernet", re.IGNORECASE)
# values shorter than this are not masked by value: "on", "1" or a port would mask unrelated text
MIN_SECRET_LENGTH = 6
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
_KEYED_SECRET = re.compile(
    r"""((?:password|passwd|pwd|secret|token|api[_.-]?key|access[_.-]?key|credential)s?["']?\s*[=:]\s*["']?)"""
    r"""([^\s"',;&}]+)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)

_lock = threading.Lock()
_known: set[str] = set()


def register(*values: str | None) -> None:
    """Mask these values (a password read from a file, a generated token) in every log line from now on."""
    with _lock:
        _known.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The values of the environment variables whose names look secret, plus the passwords inside DSN values."""
    values = [v for k, v in environ.items() if SECRET_NAME.search(k)]
    values += [m.group(0)[len(m.group(1)) : -1] for v in environ.values() for m in _URL_PASSWORD.finditer(v)]
    return [v for v in values if len(v) >= MIN_SECRET_LENGTH]


def mask_url(text: str) -> str:
    """``text`` with the password of every URL or DSN in it replaced by ``***``."""
    return _URL_PASSWORD.sub(rf"\1{MASK}@", text)


def mask_text(text: str) -> str:
    """``text`` with every secret it holds replaced by ``***``."""
    if not text:
        return text
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    text = mask_url(text)
    text = _KEYED_SECRET.sub(lambda m: m.group(1) + (m.group(2) if m.group(2) == MASK else MASK), text)
    return _BEARER.sub(rf"\1{MASK}", text)


def _masked_record_factory(make: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 (a bad format string is the handler's to report, with its own message)
            return record
        masked = mask_text(message)
        if masked != message:
            if record.name == "uvicorn.access" and isinstance(record.args, tuple):
                # its formatter unpacks the arguments (client, method, path, version, status)
                record.args = tuple(mask_text(a) if isinstance(a, str) else a for a in record.args)
            else:
                record.msg, record.args = masked, ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = mask_text("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return record

    factory.lakehouse_masking = True  # type: ignore[attr-defined]
    return factory


def install(environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> None:
    """Mask every log record of this process from now on (idempotent); the secrets of ``environ`` (default: this
    process's environment) and ``extra`` are masked by value."""
    register(*secret_values(os.environ if environ is None else environ), *extra)
    with _lock:
        current = logging.getLogRecordFactory()
        if not getattr(current, "lakehouse_masking", False):
            logging.setLogRecordFactory(_masked_record_factory(current))
