"""``bench stream``'s dedup-state part: what the stream's dedup state costs per micro-batch for the keys it holds.

Spark 4.2's own ``dropDuplicatesWithinWatermark`` operator finds expired keys by reading every key in its state store,
in every micro-batch (``StreamingDeduplicateWithinWatermarkExec.evictDupInfoFromState`` iterates the whole store),
whether or not any has expired; the timer dedup the stream runs where this project ships Spark's jars
(``lakehouse.spark.timer_dedup``) reads only the expired keys' timers, and writes more per new key. Both are measured,
side by side. A key stays until the watermark, itself ``dedup_watermark`` behind the newest event time,
passes the key's event time plus ``dedup_watermark``: a stream at steady state holds every accepted key of the last two
``dedup_watermark`` of event time. The streaming benchmark's runs start with an empty state and hold only their own
keys, so this part measures the cost per key held, and the report works out what a steady-state state would cost
at the rate the runs reached.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lakehouse.spark.jobs.common import STATE_STORE_CONF
from lakehouse.spark.timer_dedup import EXTENSION, session_setting, temporary_conf

# new keys in each of the measured micro-batches (after the one that fills the state), and how many are measured
KEYS_PER_BATCH = 2_000
MEASURED_BATCHES = 6
# the event time of the first key, and the span the state's keys fall in: recent enough that none expires
EVENT_EPOCH_S = 1_796_000_000
STATE_SPAN_S = 3_600
WATERMARK = "2 days"
SNAPSHOT_EVERY = "spark.sql.streaming.stateStore.minDeltasForSnapshot"


def _keys(spark: SparkSession, first: int, count: int, epoch_s: int, span_s: int) -> DataFrame:
    """``count`` key rows as the stream's dedup reads them: a UUID-shaped key, its event date and its event time."""
    digest = F.md5(F.col("id").cast("string"))
    seconds = F.lit(epoch_s) + ((F.col("id") - first) * span_s / max(count, 1)).cast("long")
    return spark.range(first, first + count).select(
        F.concat_ws("-", digest.substr(1, 8), digest.substr(9, 4), digest.substr(13, 4), digest.substr(17, 16)).alias(
            "_k1"
        ),
        F.to_date(F.timestamp_seconds(seconds)).alias("_k2"),
        F.timestamp_seconds(seconds).alias("_t"),
    )


def run_dedup(spark: SparkSession, source: Path, checkpoint: Path, watermark: str) -> StreamingQuery:
    """The stream's dedup operator and state-store settings over the key rows of ``source``'s folders (``b*``, one
    micro-batch each, in the order they were written), run until all are read; the finished query."""
    for key, value in STATE_STORE_CONF.items():
        spark.conf.set(key, value)
    stream = (
        spark.readStream.schema("_k1 string, _k2 date, _t timestamp")
        .option("maxFilesPerTrigger", 1)
        .parquet(str(source / "b*"))
        .withWatermark("_t", watermark)
        .dropDuplicatesWithinWatermark(["_k1", "_k2"])
    )
    query = (
        stream.writeStream.format("noop")
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    return query


def eviction_run(spark: SparkSession, work: Path, keys: int, batches: int) -> dict[str, Any]:
    """One dedup query set up as the stream's (RocksDB with changelog checkpointing, the session's shuffle
    partitions, a watermark of two days): a first micro-batch of ``keys`` keys (at least one), then ``batches``
    micro-batches of ``KEYS_PER_BATCH`` new keys each, later in event time, so that the watermark moves but no key
    expires. Per measured batch: the operator's eviction time (``allRemovalsTimeMs``, or the timer dedup's
    ``timerProcessingTimeMs``, summed over the state's partitions), the bytes its state store read through iterators
    and the batch's wall time, as Spark's progress reports them."""
    shutil.rmtree(work, ignore_errors=True)
    source = work / "input"
    _keys(spark, 0, keys, EVENT_EPOCH_S, STATE_SPAN_S).coalesce(1).write.parquet(str(source / "b0000"))
    for index in range(batches):
        time.sleep(0.01)  # the file source takes files in modification-time order
        later = EVENT_EPOCH_S + STATE_SPAN_S + 60 * index
        first = keys + index * KEYS_PER_BATCH
        _keys(spark, first, KEYS_PER_BATCH, later, 1).coalesce(1).write.parquet(str(source / f"b{index + 1:04d}"))
    query = run_dedup(spark, source, work / "checkpoint", WATERMARK)
    measured = [
        progress
        for progress in query.recentProgress
        if progress.numInputRows == KEYS_PER_BATCH and progress.stateOperators and progress.batchId > 0
    ]
    shutil.rmtree(work, ignore_errors=True)
    operators = [p.stateOperators[0] for p in measured]
    # Spark's operator times its eviction as removals; the timer dedup's is the time it spends on expired timers
    removals = [float(o.allRemovalsTimeMs) + float(o.customMetrics.get("timerProcessingTimeMs", 0)) for o in operators]
    scanned = [float(o.customMetrics.get("rocksdbTotalBytesReadThroughIterator", 0)) for o in operators]
    walls = [float(p.durationMs["triggerExecution"]) for p in measured]
    fill = next((p for p in query.recentProgress if p.batchId == 0), None)
    return {
        "keys": keys,
        "operator": operators[0].operatorName if operators else None,
        "batches": len(measured),
        "eviction_ms_p50": statistics.median(removals) if removals else None,
        "iterator_bytes_p50": statistics.median(scanned) if scanned else None,
        "batch_ms_p50": statistics.median(walls) if walls else None,
        "fill_ms": float(fill.durationMs["triggerExecution"]) if fill is not None else None,
    }


def state_bytes(spark: SparkSession, work: Path, keys: int) -> dict[str, Any]:
    """The state's size per key held: the bytes of RocksDB's SST files after a micro-batch of ``KEYS_PER_BATCH``
    keys and after one of ``keys`` more (later in event time, none expiring), summed over the state's partitions,
    with a snapshot at every commit. With changelog checkpointing a commit otherwise writes only its changelog and
    the keys of the last few batches are in no SST file yet."""
    shutil.rmtree(work, ignore_errors=True)
    source = work / "input"
    _keys(spark, 0, KEYS_PER_BATCH, EVENT_EPOCH_S, STATE_SPAN_S).coalesce(1).write.parquet(str(source / "b0000"))
    time.sleep(0.01)  # the file source takes files in modification-time order
    later = EVENT_EPOCH_S + STATE_SPAN_S
    _keys(spark, KEYS_PER_BATCH, keys, later, STATE_SPAN_S).coalesce(1).write.parquet(str(source / "b0001"))
    # the checkpoint lives outside ``work``: the state store's maintenance thread may still upload the last
    # snapshot into it after the query has ended, re-creating what a removal had just removed
    checkpoint = Path(tempfile.mkdtemp(prefix="state-bytes-"))
    with temporary_conf(spark, SNAPSHOT_EVERY, "1"):
        query = run_dedup(spark, source, checkpoint / "checkpoint", WATERMARK)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(checkpoint, ignore_errors=True)
    sizes = {
        p.batchId: int(p.stateOperators[0].customMetrics["rocksdbSstFileSize"])
        for p in query.recentProgress
        if p.stateOperators and p.batchId in (0, 1)
    }
    small, large = sizes.get(0), sizes.get(1)
    return {
        "sst_bytes": [small, large],
        "bytes_per_key": (large - small) / keys if small is not None and large is not None else None,
    }


def state_eviction(spark: SparkSession, work: Path, keys: int, batches: int = MEASURED_BATCHES) -> dict[str, Any]:
    """The eviction's cost per key held, for Spark's own dedup operator and, when the session loads it, the timer
    dedup (``lakehouse.spark.timer_dedup``, what the stream runs then), side by side: per operator, a run over a
    state of one batch's keys (``KEYS_PER_BATCH``) and one over ``keys`` keys, each with ``batches`` measured
    micro-batches; the difference of their median eviction times (and of their median batch times), per key of
    difference; the first batch of the larger run (which wrote its ``keys`` keys into an empty state), per key; and
    the state's size on disk per key held (``state_bytes``)."""
    loaded = EXTENSION in (spark.conf.get("spark.sql.extensions", "") or "").split(",")
    operators: dict[str, Any] = {}
    for operator in ("spark", "timers") if loaded else ("spark",):
        with session_setting(spark, operator):
            runs = [eviction_run(spark, work / f"{operator}-{n}", n, batches) for n in (KEYS_PER_BATCH, keys)]
        operators[operator] = {
            "runs": runs,
            "eviction_us_per_key": _per_key_us(runs, "eviction_ms_p50"),
            "batch_us_per_key": _per_key_us(runs, "batch_ms_p50"),
            "fill_us_per_key": runs[1]["fill_ms"] * 1000 / keys if runs[1]["fill_ms"] is not None else None,
        }
        with session_setting(spark, operator):
            operators[operator]["size"] = state_bytes(spark, work / f"{operator}-size", keys)
    # the top-level figures are Spark's operator's, as runs recorded before the timer dedup have them
    return {**operators["spark"], "keys_per_batch": KEYS_PER_BATCH, "operators": operators}


def _per_key_us(runs: list[dict[str, Any]], field: str) -> float | None:
    small, large = runs[0][field], runs[1][field]
    if small is None or large is None or runs[1]["keys"] <= runs[0]["keys"]:
        return None
    return float(large - small) * 1000 / (runs[1]["keys"] - runs[0]["keys"])


def steady_state(
    per_key_us: float, rate: float, accepted_share: float, watermarks_ms: list[int], batch_interval_s: float
) -> dict[str, float | None]:
    """What the eviction would cost once the state has filled: ``rate`` events/s over one query per event type (one
    ``watermarks_ms`` each) in equal shares, of which ``accepted_share`` reach the state, each key kept for two of
    its query's watermark of event time, and one micro-batch per query every ``batch_interval_s``.
    ``rate_for_two_cores``: the rate at which the eviction alone would take both of the machine's cores."""
    keys = [rate / len(watermarks_ms) * accepted_share * 2 * watermark / 1000 for watermark in watermarks_ms]
    per_key_us = max(per_key_us, 0.0)  # a difference of two medians below the noise: nothing measurable
    cores = sum(keys) * per_key_us / 1e6 / batch_interval_s
    return {
        "keys": sum(keys),
        "eviction_s_per_batch": sum(keys) / len(keys) * per_key_us / 1e6,
        "batch_interval_s": batch_interval_s,
        "cores": cores,
        "rate_for_two_cores": 2.0 * rate / cores if cores else None,
    }
