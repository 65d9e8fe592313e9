"""Per-batch values kept out of the generated Java code of a stage."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def batch_value(value: Column) -> Column:
    """``value`` (a literal, or ``current_timestamp()``), evaluated by Spark's interpreter rather than written into
    the generated Java code of the stage that uses it.

    Spark writes a timestamp, date or number literal into the Java source of each stage, and caches compiled
    classes by their source: a value that changes with every micro-batch (its time, its watermark) makes Spark
    compile, and the JVM optimise again, every such stage in every batch. A higher-order function has no generated
    code of its own (the stage calls its interpreter, which holds the value), and the optimizer does not fold it:
    folding the empty array ``aggregate`` would give back the literal."""
    return F.aggregate(F.array(), value, lambda acc, _: acc)
