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

import logging
import os
from pathlib import Path

from lakehouse.config.errors import PrerequisiteError
from lakehouse.spark.java_build import built_or_warned, cached_jar, sources

log = logging.getLogger(__name__)
SOURCES = Path(__file__).resolve().parent / "java"
FILE_SYSTEM = "lakehouse.hadoop.NioLocalFileSystem"
ABSTRACT_FILE_SYSTEM = "lakehouse.hadoop.NioLocalFs"
HADOOP_CONF = {
    "spark.hadoop.fs.file.impl": FILE_SYSTEM,
    "spark.hadoop.fs.AbstractFileSystem.file.impl": ABSTRACT_FILE_SYSTEM,
}
CLASS_PATH_KEYS = ("spark.driver.extraClassPath", "spark.executor.extraClassPath")


def _hadoop_api_jar() -> Path:
    """The Hadoop client API jar of the Spark distribution the JVMs start from."""
    from lakehouse.spark.distribution import spark_home

    found = sorted((spark_home() / "jars").glob("hadoop-client-api-*.jar"))
    if not found:
        raise PrerequisiteError(f"no hadoop-client-api jar in {spark_home() / 'jars'}: reinstall pyspark (make setup)")
    return found[-1]


def jar_path() -> Path:
    """Where the compiled jar lives: named by a digest of the sources and the Hadoop jar they compile against."""
    return cached_jar("local-fs", sources(SOURCES), _hadoop_api_jar().name)


def enabled() -> bool:
    """False when ``LAKEHOUSE_LOCAL_FS=hadoop`` asks for Hadoop's own classes."""
    return os.environ.get("LAKEHOUSE_LOCAL_FS", "nio").lower() != "hadoop"


def ensure_jar() -> Path | None:
    """Compile the jar unless it is in the cache; None (after one warning) without ``javac`` or when turned off."""
    if not enabled():
        return None
    return built_or_warned(
        jar_path(),
        sources(SOURCES),
        str(_hadoop_api_jar()),
        log,
        "Spark's local file system then starts a process per permission it sets (slower)",
    )


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
