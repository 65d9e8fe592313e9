"""The Spark distribution every JVM of this project starts from: a folder in the cache whose path and files stay the
same for every checkout and virtualenv that installs the same pyspark build.

pyspark ships a Spark distribution inside the package (``bin/``, ``jars/``), so its path is the venv's, and pip
stamps each jar with the install time. The drivers' class archive (``lakehouse.spark.class_archive``) is only mapped
by a JVM whose class path has the same paths, sizes and modification times as when it was built; so with the venv's
distribution, every fresh checkout (a CI run) built both archives again, about 55 s each on two cores. ``lakehouse
setup`` copies the distribution once into ``$LAKEHOUSE_CACHE/spark-home/<version>-<digest of pyspark's RECORD>``
(the jars hard-linked where the file system allows); ``spark_home`` then names it, and every launcher passes it on as
``SPARK_HOME``. Without it (no ``lakehouse setup`` yet), the venv's distribution is used. ``SPARK_HOME`` set by the
user wins over both."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)
# what spark-submit, spark-class and the Python workers read from SPARK_HOME
PARTS = ("bin", "sbin", "jars", "python")
COMPLETE = ".complete"


def pyspark_home() -> Path:
    """The distribution inside the installed pyspark package."""
    import pyspark

    return Path(pyspark.__file__).parent


@functools.cache
def _digest() -> str:
    """A digest of the distribution's files as pyspark's RECORD lists them (paths and content hashes); of their paths
    and sizes where the install left no RECORD."""
    prefixes = tuple(f"pyspark/{part}/" for part in PARTS)
    files = metadata.files("pyspark") or []
    lines = sorted(f"{f}:{f.hash.value if f.hash else ''}" for f in files if str(f).startswith(prefixes))
    if not lines:
        home = pyspark_home()
        lines = sorted(
            f"{path.relative_to(home)}:{path.stat().st_size}"
            for part in PARTS
            for path in (home / part).rglob("*")
            if path.is_file()
        )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def distribution_folder() -> Path:
    """Where this pyspark build's distribution lives in the cache (it may not exist yet)."""
    from lakehouse.spark.jars import cache_root

    return cache_root() / "spark-home" / f"{metadata.version('pyspark')}-{_digest()}"


def spark_home() -> Path:
    """``SPARK_HOME`` when set; else the cached distribution once ``ensure_distribution`` made it; else pyspark's."""
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    folder = distribution_folder()
    return folder if (folder / COMPLETE).is_file() else pyspark_home()


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def ensure_distribution() -> Path:
    """Make the cached distribution unless it exists (seconds: the jars are hard links) and return its folder."""
    folder = distribution_folder()
    if (folder / COMPLETE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    source = pyspark_home()
    with tempfile.TemporaryDirectory(prefix=f".{folder.name}.", dir=folder.parent) as scratch:
        staged = Path(scratch) / "home"
        staged.mkdir()
        for part in PARTS:
            shutil.copytree(
                source / part,
                staged / part,
                copy_function=_link_or_copy if part == "jars" else shutil.copy2,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        (staged / COMPLETE).write_text(f"{source}\n")
        try:
            staged.rename(folder)
        except OSError:  # another process made it first (a non-empty folder cannot be renamed over)
            if not (folder / COMPLETE).is_file():
                raise
    log.info("spark distribution %s", folder)
    return folder
