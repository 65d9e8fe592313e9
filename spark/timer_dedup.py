"""Streaming ``dropDuplicatesWithinWatermark`` whose eviction reads only the keys that expire.

Spark's own operator finds expired keys by reading every key its state holds, at the end of every micro-batch (in
Spark 4.2, ``StreamingDeduplicateWithinWatermarkExec.evictDupInfoFromState``): about 0.5 µs of CPU per key held, per
batch, so a stream that holds its keys for days spends more on eviction than on its events (docs/architecture.md,
"Deduplication horizon"). ``spark/extension`` holds a Spark session extension whose analyzer rule plans a streaming
``dropDuplicatesWithinWatermark`` as a ``transformWithState`` that does the same, with each key's expiry an
event-time timer: Spark keeps timers in time order, so an eviction reads the expired ones only.

``lakehouse setup`` compiles it once (``javac``, seconds) into the jar cache, and ``session_conf`` adds it to
``spark.jars`` and ``spark.sql.extensions`` wherever this project ships Spark's jars (local, a cluster, the Spark
Connect server). ``LAKEHOUSE_DEDUP=spark`` keeps Spark's own operator; so does Databricks, whose runtime provides
the jars. A query keeps the operator its checkpoint was made with: started with the other one, it fails with
``STREAMING_STATEFUL_OPERATOR_NOT_MATCH_IN_STATE_METADATA`` (docs/runbook.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.spark.java_build import built_or_warned, cached_jar, sources

log = logging.getLogger(__name__)
SOURCES = Path(__file__).resolve().parent / "extension"
EXTENSION = "lakehouse.dedup.TimerDedupExtension"
SETTING = "LAKEHOUSE_DEDUP"
# the session setting the extension's rule reads when it plans a query: "spark" keeps Spark's own operator
SESSION_SETTING = "spark.lakehouse.dedup"
# the name Spark's own operator records in a checkpoint's operator metadata
SPARK_OPERATOR = "dedupeWithinWatermark"


def enabled() -> bool:
    """False when ``LAKEHOUSE_DEDUP=spark`` asks for Spark's own dedup operator."""
    return os.environ.get(SETTING, "timers").lower() != "spark"


def _spark_jars() -> Path:
    from lakehouse.spark.distribution import spark_home

    return spark_home() / "jars"


def jar_path() -> Path:
    """Where the compiled jar lives: named by a digest of the sources and of the Spark SQL jar they compile
    against."""
    spark_sql = sorted(p.name for p in _spark_jars().glob("spark-sql_*.jar"))
    return cached_jar("timer-dedup", sources(SOURCES), ",".join(spark_sql))


def ensure_jar() -> Path | None:
    """Compile the jar unless it is in the cache; None (after one warning) without ``javac`` or when turned off."""
    if not enabled():
        return None
    return built_or_warned(
        jar_path(),
        sources(SOURCES),
        str(_spark_jars() / "*"),
        log,
        "streaming dedup then uses Spark's own operator, which reads every key it holds",
    )


def with_timer_dedup(conf: dict[str, str]) -> dict[str, str]:
    """``conf`` with the extension's jar in ``spark.jars`` and its class in ``spark.sql.extensions``, when it is
    built and turned on; ``conf`` unchanged otherwise."""
    jar = ensure_jar()
    if jar is None:
        return conf
    extensions = [e for e in conf.get("spark.sql.extensions", "").split(",") if e.strip()]
    jars = [j for j in conf.get("spark.jars", "").split(",") if j.strip()]
    return {
        **conf,
        "spark.sql.extensions": ",".join([*extensions, EXTENSION] if EXTENSION not in extensions else extensions),
        "spark.jars": ",".join([*jars, str(jar)] if str(jar) not in jars else jars),
    }


@contextmanager
def operator_of_checkpoint(spark: SparkSession, operator: str | None, query: str) -> Iterator[None]:
    """Plan and start a query inside this block with the dedup operator its checkpoint's state was made by:
    Spark's own when ``operator`` names it (a checkpoint from before the timer dedup, which cannot read the other's
    state), else the session's choice."""
    if operator != SPARK_OPERATOR:
        yield
        return
    log.warning(
        "%s: its checkpoint holds the state of Spark's own dedup operator, which it keeps (it reads every key it "
        "holds in every micro-batch); restart the event type from scratch to move it to the timer dedup "
        "(docs/runbook.md)",
        query,
    )
    with session_setting(spark, "spark"):
        yield


@contextmanager
def session_setting(spark: SparkSession, operator: str) -> Iterator[None]:
    """Plan queries inside this block with ``operator`` (``spark`` or ``timers``), then put the session's own
    setting back."""
    with temporary_conf(spark, SESSION_SETTING, operator):
        yield


@contextmanager
def temporary_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """The session's ``key`` set to ``value`` inside this block, then put back as it was (or unset)."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)
