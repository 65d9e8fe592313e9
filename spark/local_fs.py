"""Hadoop's local file system for the Spark JVMs this project starts on this machine, without a process per call.

pyspark does not ship Hadoop's native library, so Hadoop's ``file:`` file system starts a ``chmod`` for every
permission it sets (each data and checksum file written, each directory made) and a ``readlink`` for every link
status it reads (each rename through ``FileContext``: Delta commits, streaming checkpoints). A streaming batch of
30,000 events started about 300 such processes. ``spark/java/lakehouse/hadoop`` holds a subclass of each that does
the same through ``java.nio``; ``lakehouse setup`` compiles it once (``javac``, seconds) into the jar cache, and
``session_conf`` puts it on the class path of drivers and executors that run here (a ``local[*]`` master, or a
``spark://`` master on this machine) with ``fs.file.impl`` and ``fs.AbstractFileSystem.file.impl`` naming it.
Elsewhere (a remote cluster, Databricks) nothing changes. Without a JDK's ``javac`` it is one warning, and Spark
uses Hadoop's own classes. ``LAKEHOUSE_LOCAL_FS=hadoop`` keeps Hadoop's own classes too.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lakehouse.config.errors import PrerequisiteError

log = logging.getLogger(__name__)
SOURCES = Path(__file__).resolve().parent / "java"
FILE_SYSTEM = "lakehouse.hadoop.NioLocalFileSystem"
ABSTRACT_FILE_SYSTEM = "lakehouse.hadoop.NioLocalFs"
HADOOP_CONF = {
    "spark.hadoop.fs.file.impl": FILE_SYSTEM,
    "spark.hadoop.fs.AbstractFileSystem.file.impl": ABSTRACT_FILE_SYSTEM,
}
CLASS_PATH_KEYS = ("spark.driver.extraClassPath", "spark.executor.extraClassPath")


def _sources() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def _hadoop_api_jar() -> Path:
    """The Hadoop client API jar of the Spark distribution the JVMs start from."""
    from lakehouse.spark.distribution import spark_home

    found = sorted((spark_home() / "jars").glob("hadoop-client-api-*.jar"))
    if not found:
        raise PrerequisiteError(f"no hadoop-client-api jar in {spark_home() / 'jars'}: reinstall pyspark (make setup)")
    return found[-1]


def jar_path() -> Path:
    """Where the compiled jar lives: named by a digest of the sources and the Hadoop jar they compile against."""
    from lakehouse.spark.jars import cache_root

    digest = hashlib.sha256()
    for source in _sources():
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    digest.update(_hadoop_api_jar().name.encode())
    return cache_root() / "jars" / f"local-fs-{digest.hexdigest()[:12]}" / "lakehouse-local-fs.jar"


def enabled() -> bool:
    """False when ``LAKEHOUSE_LOCAL_FS=hadoop`` asks for Hadoop's own classes."""
    return os.environ.get("LAKEHOUSE_LOCAL_FS", "nio").lower() != "hadoop"


def ensure_jar() -> Path | None:
    """Compile the jar unless it is in the cache; None (after one warning) without ``javac`` or when turned off."""
    if not enabled():
        return None
    target = jar_path()
    if target.is_file():
        return target
    javac, jar = shutil.which("javac"), shutil.which("jar")
    if not javac or not jar:
        _warn_once(
            "`javac` was not found on PATH, so Spark's local file system starts a process for each permission it "
            "sets (slower): install a Java 17 JDK (Debian: `apt-get install openjdk-17-jdk-headless`)"
        )
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".local-fs-", dir=target.parent) as scratch:
        classes = Path(scratch) / "classes"
        staged = Path(scratch) / target.name
        commands = [
            [javac, "--release", "17", "-nowarn", "-cp", str(_hadoop_api_jar()), "-d", str(classes)]
            + [str(s) for s in _sources()],
            [jar, "cf", str(staged), "-C", str(classes), "."],
        ]
        for command in commands:
            run = subprocess.run(command, capture_output=True, text=True, check=False)
            if run.returncode != 0:
                tail = run.stderr.strip()[-500:]
                _warn_once(f"building {target.name} failed, so Spark keeps Hadoop's local file system: {tail}")
                return None
        os.replace(staged, target)  # atomic: a concurrent build writes the same bytes
    log.info("compiled %s", target)
    return target


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


def with_local_fs(conf: dict[str, str], *, local_executors: bool) -> dict[str, str]:
    """``conf`` with the driver (and with ``local_executors`` the executors, which then run on this machine) using
    the ``java.nio`` local file system, when its jar is built; ``conf`` unchanged otherwise, or when the
    environment's own Spark properties name a ``file:`` file system of their own."""
    if any(key in conf for key in HADOOP_CONF):
        return conf
    jar = ensure_jar()
    if jar is None:
        return conf
    conf = {**conf, **HADOOP_CONF}
    for key in CLASS_PATH_KEYS if local_executors else CLASS_PATH_KEYS[:1]:
        conf[key] = os.pathsep.join(entry for entry in (str(jar), conf.get(key, "")) if entry)
    return conf
