"""The timer dedup (spark/extension, ``lakehouse.spark.timer_dedup``): a streaming ``dropDuplicatesWithinWatermark``
planned as a ``transformWithState`` whose keys expire by event-time timers, against Spark's own operator on the same
micro-batches, in the suite's real Spark session (which loads the extension as every lakehouse session does)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.scripts.bench_state import eviction_run
from lakehouse.spark.io.checkpoint import state_operator
from lakehouse.spark.jobs.common import STATE_STORE_CONF
from lakehouse.spark.timer_dedup import EXTENSION, SESSION_SETTING, SPARK_OPERATOR, operator_of_checkpoint

T0 = 1_796_601_600  # epoch seconds
HOUR = 3_600
# micro-batches of (key, seconds after T0 or None for a row without event time, tag); the delay is one hour
BATCHES: list[list[tuple[str, int | None, str]]] = [
    # a first key twice in one batch, a second key, and a row without an event time
    [("a", 0, "a-first"), ("a", 0, "a-copy-same-batch"), ("b", 0, "b-first"), ("m0", None, "message-0")],
    # a copy of a (its key is held), a new key three hours later: the watermark moves to T0 + 2 h
    [("a", 0, "a-copy-next-batch"), ("c", 3 * HOUR, "c-first"), ("m1", None, "message-1")],
    # watermark now T0 + 2 h, previous batch's T0 - 1 h. "edge": a new key between the two. "old": a new key before
    # both. "b": a copy after its key's expiry (T0 + 1 h) passed the watermark
    [("edge", HOUR, "edge"), ("old", -2 * HOUR, "old"), ("b", 0, "b-copy-expired"), ("c", 3 * HOUR, "c-copy")],
]
# kept by both operators, worked out by hand from the rules above
KEPT = {"a-first", "b-first", "message-0", "c-first", "message-1"}


@pytest.fixture
def session(spark: SparkSession) -> Iterator[SparkSession]:
    for key, value in STATE_STORE_CONF.items():
        spark.conf.set(key, value)
    yield spark
    spark.conf.unset(SESSION_SETTING)


def _write(spark: SparkSession, folder: Path, batches: list[list[tuple[str, int | None, str]]], first: int = 0) -> None:
    for index, batch in enumerate(batches, start=first):
        rows = [(key, None if at is None else T0 + at, tag) for key, at, tag in batch]
        spark.createDataFrame(rows, "_k1 string, seconds long, tag string").select(
            "_k1",
            F.to_date(F.timestamp_seconds(F.coalesce("seconds", F.lit(T0)))).alias("_k2"),
            F.timestamp_seconds("seconds").alias("_t"),
            F.struct("tag").alias("_row"),
        ).coalesce(1).write.parquet(str(folder / "input" / f"b{index}"))
        time.sleep(0.01)  # the file source takes files in modification-time order


def _deduplicated(spark: SparkSession, folder: Path) -> DataFrame:
    return (
        spark.readStream.schema("_k1 string, _k2 date, _t timestamp, _row struct<tag: string>")
        .option("maxFilesPerTrigger", 1)
        .parquet(str(folder / "input" / "b*"))
        .withWatermark("_t", "1 hour")
        .dropDuplicatesWithinWatermark(["_k1", "_k2"])
    )


def _drain(spark: SparkSession, folder: Path) -> tuple[set[str], str]:
    """Run the dedup over every batch not read yet; every tag kept so far, and the analyzed plan."""
    deduplicated = _deduplicated(spark, folder)
    plan = deduplicated._jdf.queryExecution().analyzed().toString()
    query = (
        deduplicated.writeStream.format("parquet")
        .option("path", str(folder / "output"))
        .option("checkpointLocation", str(folder / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    kept = {row.tag for row in spark.read.parquet(str(folder / "output")).select("_row.tag").collect()}
    return kept, plan


def _run(spark: SparkSession, tmp_path: Path, operator: str) -> tuple[set[str], str]:
    spark.conf.set(SESSION_SETTING, operator)
    _write(spark, tmp_path / operator, BATCHES)
    return _drain(spark, tmp_path / operator)


def test_the_session_loads_the_extension(spark: SparkSession) -> None:
    assert EXTENSION in spark.conf.get("spark.sql.extensions", "").split(",")


def test_timers_keep_what_sparks_operator_keeps_and_drop_at_the_current_watermark(
    session: SparkSession, tmp_path: Path
) -> None:
    by_spark, spark_plan = _run(session, tmp_path, "spark")
    by_timers, timers_plan = _run(session, tmp_path, "timers")

    assert "DeduplicateWithinWatermark" in spark_plan and "TransformWithState" not in spark_plan
    assert "TransformWithState" in timers_plan and "FirstWithinWatermark" in timers_plan
    assert by_timers == KEPT
    # Spark's operator drops late rows at the previous batch's watermark (T0 - 1 h for the third batch), so it keeps
    # "edge" (T0 + 1 h); the timers drop rows at or before the batch's own (T0 + 2 h), as the stream's late check
    # does, which then looks the event up in Silver
    assert by_spark == KEPT | {"edge"}


def test_timers_read_only_the_keys_that_expire(session: SparkSession, tmp_path: Path) -> None:
    held = 100_000
    session.conf.set(SESSION_SETTING, "timers")
    by_timers = eviction_run(session, tmp_path / "timers", held, batches=3)
    session.conf.set(SESSION_SETTING, "spark")
    by_spark = eviction_run(session, tmp_path / "spark", held, batches=3)

    assert (by_timers["operator"], by_spark["operator"]) == ("transformWithStateExec", "dedupeWithinWatermark")
    assert by_timers["batches"] == by_spark["batches"] == 3
    # in each batch of 2,000 new keys, none expiring: Spark's operator reads every key it holds (a key row is at
    # least its 36-character key), the timers' reads at most the first timer that has not expired in each partition
    assert by_spark["iterator_bytes_p50"] >= held * 36
    assert by_timers["iterator_bytes_p50"] < 1_000


def test_a_checkpoint_made_by_sparks_operator_keeps_it(session: SparkSession, tmp_path: Path) -> None:
    _run(session, tmp_path, "spark")
    _run(session, tmp_path, "timers")
    assert state_operator(session, str(tmp_path / "spark" / "checkpoint")) == SPARK_OPERATOR
    assert state_operator(session, str(tmp_path / "timers" / "checkpoint")) is None  # its metadata is version 2
    assert state_operator(session, str(tmp_path / "no-checkpoint")) is None

    # a new key after the stream restarts on its old checkpoint, the session's choice now the timers
    session.conf.unset(SESSION_SETTING)
    _write(session, tmp_path / "spark", [[("d", 4 * HOUR, "d-first"), ("a", 0, "a-copy-after-restart")]], first=3)
    with operator_of_checkpoint(session, state_operator(session, str(tmp_path / "spark" / "checkpoint")), "test"):
        kept, plan = _drain(session, tmp_path / "spark")

    assert "DeduplicateWithinWatermark" in plan
    assert kept == KEPT | {"edge", "d-first"}
    assert session.conf.get(SESSION_SETTING, None) is None  # restored for the next query
