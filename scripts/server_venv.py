"""Virtualenvs of their own for the stack's servers whose pins clash with the project's (MLflow, Superset).

Each is built from a requirements file that pins every package (frozen from a clean venv). Like the JVM jars, it
is built once into the cache shared by every checkout on this machine (``$LAKEHOUSE_CACHE/venvs/<name>-<hash of the
pins and the Python>``): ``lakehouse setup`` builds it, a change of pins builds a new one, and nothing else does.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lakehouse.scripts.errors import PrerequisiteError
from lakehouse.spark.jars import cache_root

log = logging.getLogger(__name__)
PIP = "pip==26.3"
# what pip prints when it cannot reach the index (a pin that does not exist says "No matching distribution" alone)
_UNREACHABLE = ("ConnectionError", "Max retries exceeded", "Temporary failure in name resolution", "ProxyError")


@dataclass(frozen=True)
class ServerVenv:
    """A virtualenv named ``name`` with ``requirements`` installed into a Python like this one's, for ``what``
    (a server's name in messages), whose entry point is the command ``command``."""

    name: str
    requirements: Path
    command: str
    what: str

    @property
    def folder(self) -> Path:
        """Cache folder of the virtualenv, keyed by its pins and by the Python it is built on."""
        key = self.requirements.read_bytes() + f"{sys.version_info[:2]}{sys.base_prefix}".encode()
        return cache_root() / "venvs" / f"{self.name}-{hashlib.sha256(key).hexdigest()[:12]}"

    def bin(self, command: str | None = None) -> Path:
        """A command of the virtualenv (its entry point unless named)."""
        return self.folder / "bin" / (command or self.command)

    @property
    def is_ready(self) -> bool:
        """True when the virtualenv was built completely."""
        return (self.folder / ".complete").is_file() and self.bin().is_file()

    def ensure(self) -> Path:
        """Build the virtualenv unless it is ready (idempotent; a second process waits for the first)."""
        if self.is_ready:
            return self.folder
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with (self.folder.parent / f"{self.folder.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.is_ready:
                self._build()
        return self.folder

    def _build(self) -> None:
        # a virtualenv cannot be moved once built (its scripts name its path): a half-built one is removed instead
        shutil.rmtree(self.folder, ignore_errors=True)
        log.info("building %s's virtualenv from %s into %s", self.what, self.requirements, self.folder)
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(self.folder)], capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise PrerequisiteError(
                f"`{sys.executable} -m venv` failed, so {self.what} has no virtualenv: install Python's venv module "
                f"(Debian: `apt-get install python3-venv`), then run `make setup` again ({_last_line(made.stderr)})"
            )
        python = str(self.bin("python"))
        for args in (["--upgrade", PIP], ["-r", str(self.requirements)]):
            result = subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                shutil.rmtree(self.folder, ignore_errors=True)
                output = result.stdout + result.stderr
                last = _last_line(output)
                if any(sign in output for sign in _UNREACHABLE):
                    raise PrerequisiteError(
                        f"pip could not reach its package index while building {self.what}'s virtualenv: check the "
                        f"network, proxy or pip's index settings, then run `make setup` again ({last})"
                    )
                raise PrerequisiteError(
                    f"pip failed to build {self.what}'s virtualenv from {self.requirements}: {last}; fix the pins "
                    "there (or the build tools they need), then run `make setup` again"
                )
        (self.folder / ".complete").write_text(self.requirements.read_text())


def _last_line(output: str) -> str:
    lines = output.strip().splitlines()
    return lines[-1].strip() if lines else ""
