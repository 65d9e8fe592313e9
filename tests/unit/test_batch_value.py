"""``batch_value``: a value that changes with every micro-batch, which Spark reads at run time instead of compiling it
into the Java code of the stage. Compilations are counted by Spark's own codegen metric (a compiled class is
cached by its source, so a count that stays still means the stage's code did not change)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from lakehouse.spark.transforms.literals import batch_value

TIMES = [datetime(2026, 12, 6, 21, minute, 5) for minute in range(1, 5)]


def _compilations(spark: SparkSession) -> int:
    """Classes compiled from generated code in this JVM so far (cache misses only)."""
    metrics = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics  # type: ignore[union-attr]
    return int(metrics.METRIC_COMPILATION_TIME().getCount())


def _run(spark: SparkSession, value: Column) -> list[tuple[int, datetime]]:
    """A generated stage (a range, a filter and a projection) that compares a column with ``value`` and returns it."""
    frame = spark.range(0, 6, numPartitions=2).select(
        F.col("id"), F.timestamp_seconds(F.lit(1796590000) + F.col("id")).alias("at"), value.alias("value")
    )
    rows = frame.where(F.col("at") <= F.col("value")).orderBy("id").collect()
    return [(row.id, row.value) for row in rows]


def _compiled_per_value(spark: SparkSession, as_column: Callable[[datetime], Column]) -> list[int]:
    """The classes each of ``TIMES`` made Spark compile, after a first untimed run; each run's rows checked."""
    _run(spark, as_column(datetime(2026, 12, 6, 21, 0)))
    compiled = []
    for at in TIMES:
        before = _compilations(spark)
        assert _run(spark, as_column(at)) == [(i, at) for i in range(6)]
        compiled.append(_compilations(spark) - before)
    return compiled


def test_a_literal_recompiles_the_stage_for_each_value(spark: SparkSession) -> None:
    """The control: without ``batch_value`` every new value compiles the stage again, so the metric does see it."""
    assert all(count >= 1 for count in _compiled_per_value(spark, F.lit))


def test_batch_value_keeps_the_stage_compiled_once(spark: SparkSession) -> None:
    assert _compiled_per_value(spark, lambda at: batch_value(F.lit(at))) == [0] * len(TIMES)


def test_batch_value_of_current_timestamp_is_the_query_time(spark: SparkSession) -> None:
    row = spark.range(1).select(batch_value(F.current_timestamp()).alias("a"), F.current_timestamp().alias("b")).first()
    assert row is not None and row.a == row.b


def test_batch_value_in_observed_aggregates(spark: SparkSession) -> None:
    """Observed aggregates are evaluated by the interpreter: the value is still there."""
    from pyspark.sql import Observation

    observation = Observation("batch-value")
    cutoff = datetime(2026, 12, 6, 21, 0, 3)
    frame = spark.range(0, 6).select(F.timestamp_seconds(F.lit(1796590800) + F.col("id")).alias("at"))
    frame.observe(observation, F.count(F.when(F.col("at") <= batch_value(F.lit(cutoff)), 1)).alias("n")).collect()
    assert observation.get == {"n": 4}
