"""Compiling this project's Java sources into a jar in the jar cache, once per source and class path version."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
NO_JDK = "install a Java 17 JDK (Debian: `apt-get install openjdk-17-jdk-headless`)"


def sources(root: Path) -> list[Path]:
    """The ``.java`` files under ``root``, in a stable order."""
    return sorted(root.rglob("*.java"))


def cached_jar(name: str, java_sources: list[Path], class_path_tag: str) -> Path:
    """Where a jar of ``java_sources`` lives in the jar cache: named by a digest of the sources and of
    ``class_path_tag`` (what they compile against)."""
    from lakehouse.spark.jars import cache_root

    digest = hashlib.sha256()
    for source in java_sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    digest.update(class_path_tag.encode())
    return cache_root() / "jars" / f"{name}-{digest.hexdigest()[:12]}" / f"lakehouse-{name}.jar"


def build_jar(target: Path, java_sources: list[Path], class_path: str) -> str | None:
    """Compile ``java_sources`` against ``class_path`` into ``target`` unless it exists; the reason when it could
    not (no ``javac``, or a compiler error), else None."""
    if target.is_file():
        return None
    javac, jar = shutil.which("javac"), shutil.which("jar")
    if not javac or not jar:
        return f"`javac` was not found on PATH: {NO_JDK}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.stem}-", dir=target.parent) as scratch:
        classes = Path(scratch) / "classes"
        staged = Path(scratch) / target.name
        commands = [
            [javac, "--release", "17", "-nowarn", "-cp", class_path, "-d", str(classes)]
            + [str(s) for s in java_sources],
            [jar, "cf", str(staged), "-C", str(classes), "."],
        ]
        for command in commands:
            run = subprocess.run(command, capture_output=True, text=True, check=False)
            if run.returncode != 0:
                return f"building {target.name} failed: {run.stderr.strip()[-500:]}"
        os.replace(staged, target)  # atomic: a concurrent build writes the same bytes
    log.info("compiled %s", target)
    return None


def built_or_warned(
    target: Path, java_sources: list[Path], class_path: str, logger: logging.Logger, otherwise: str
) -> Path | None:
    """``target``, compiled by ``build_jar`` unless it exists; None after one warning on ``logger`` (the reason,
    then ``otherwise``: what runs without it) when it could not be built."""
    failure = build_jar(target, java_sources, class_path)
    if failure is not None:
        warn_once(logger, f"{failure}; {otherwise}")
        return None
    return target


@functools.cache
def warn_once(logger: logging.Logger, message: str) -> None:
    """Log ``message`` as a warning on ``logger`` the first time only."""
    logger.warning(message)
