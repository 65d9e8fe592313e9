"""Delta Lake reads and writes. Every write is idempotent: appends carry a transaction id tied to the
streaming checkpoint (``txnAppId``/``txnVersion``), batch rewrites replace exactly their partitions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)


def delta_ref(path: str) -> str:
    """SQL reference to the Delta table at ``path``: ``delta.`<path>```."""
    return "delta.`{}`".format(path.replace("`", "``"))


_MISSING_TABLE = (
    "DELTA_MISSING_DELTA_TABLE",
    "DELTA_TABLE_NOT_FOUND",
    "DELTA_TABLE_ONLY_OPERATION",
    "DELTA_PATH_DOES_NOT_EXIST",
    "PATH_NOT_FOUND",
)


def read_table(spark: SparkSession, path: str) -> DataFrame | None:
    """The Delta table at ``path``, or None when there is none. Resolving the schema loads the table's snapshot
    (also over Spark Connect, where reads are otherwise lazy); no Spark job runs."""
    from pyspark.errors import AnalysisException

    try:
        frame = spark.read.format("delta").load(path)
        _ = frame.schema
    except AnalysisException as exc:
        if exc.getCondition() in _MISSING_TABLE:
            return None
        raise
    return frame


def table_exists(spark: SparkSession, path: str) -> bool:
    """True when ``path`` holds a Delta table."""
    return read_table(spark, path) is not None


def table_is_empty(spark: SparkSession, path: str) -> bool:
    """True when ``path`` holds no Delta table or a table without rows."""
    table = read_table(spark, path)
    return table is None or table.limit(1).count() == 0


def append_once(
    df: DataFrame,
    path: str,
    app_id: str,
    version: int,
    partition_by: Sequence[str] = (),
    user_metadata: str | None = None,
) -> int | None:
    """Append ``df`` unless this (app_id, version) was already committed to the table (a replayed batch).
    ``user_metadata`` goes into the commit (``DESCRIBE HISTORY``'s ``userMetadata``).

    Returns the number of rows appended, counted while writing them, or None when the append was skipped (or the
    count did not arrive with the write, which a Spark Connect session does not promise)."""
    observation = Observation(f"append-{uuid.uuid4().hex}")
    writer = (
        df.observe(observation, F.count(F.lit(1)).alias("rows"))
        .write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", str(version))
        .option("mergeSchema", "false")
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if user_metadata is not None:
        writer = writer.option("userMetadata", user_metadata)
    writer.save(path)
    return _observed_rows(observation)


def observed(observation: Observation) -> dict[str, Any]:
    """What ``observation`` collected, or ``{}`` when its frame was never run (a skipped append runs no query,
    so nothing is observed, and ``Observation.get`` would wait forever)."""
    jvm_observation = getattr(observation, "_jo", None)
    if jvm_observation is None or not jvm_observation.future().isCompleted():
        return {}
    return dict(observation.get)


def _observed_rows(observation: Observation) -> int | None:
    values = observed(observation)
    return int(values["rows"]) if values else None


def replace_range(
    df: DataFrame, path: str, column: str, start: str, end: str, partition_by: Sequence[str] = ()
) -> None:
    """Replace the rows with ``start <= column < end`` by ``df`` in one atomic commit (replaceWhere)."""
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"{column} >= '{start}' AND {column} < '{end}'")
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def _path_exists(spark: SparkSession, location: str) -> bool:
    jvm = spark.sparkContext._jvm
    if jvm is None:
        return False
    path = jvm.org.apache.hadoop.fs.Path(location)
    return bool(path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(path))


def checkpoint_app_id(spark: SparkSession, checkpoint: str) -> str:
    """A stable id for one streaming checkpoint, stored inside it (works on any Hadoop file system).

    Delta transaction ids must change when a checkpoint is replaced, because a new checkpoint restarts batch
    ids at 0; keying idempotent writes on this id makes a fresh checkpoint a fresh writer.
    """
    location = f"{checkpoint.rstrip('/')}/lakehouse_app_id"
    if _path_exists(spark, f"{location}/_SUCCESS"):
        rows = spark.read.text(location).collect()
        if rows and str(rows[0][0]).strip():
            return str(rows[0][0]).strip()
    # first start of this checkpoint (or a start killed before the id was fully written)
    app_id = str(uuid.uuid4())
    spark.createDataFrame([(app_id,)], "value string").coalesce(1).write.mode("overwrite").text(location)
    return app_id


def ensure_table(spark: SparkSession, path: str, schema: str, partition_by: Sequence[str] = ()) -> None:
    """Create an empty Delta table with ``schema`` unless one exists (so readers can start before writers).

    A process killed while creating the table can leave an empty ``_delta_log`` folder, on which Delta reports
    the table as missing without creating it; such a folder (no file in it) is removed and creation retried.
    """
    from delta.tables import DeltaTable
    from pyspark.errors import AnalysisException

    def create() -> None:
        builder = (
            DeltaTable.createIfNotExists(spark).location(path).addColumns(spark.createDataFrame([], schema).schema)
        )
        if partition_by:
            builder = builder.partitionedBy(*partition_by)
        builder.execute()

    try:
        create()
    except AnalysisException as exc:
        if exc.getCondition() != "DELTA_TABLE_NOT_FOUND" or not _remove_empty_log(spark, path):
            raise
        log.warning("removed the empty _delta_log of %s (a creation killed before its first commit)", path)
        create()


def _remove_empty_log(spark: SparkSession, path: str) -> bool:
    """Delete ``<path>/_delta_log`` if it exists and holds nothing; True when it did."""
    jvm = spark.sparkContext._jvm
    if jvm is None:
        return False
    log_dir = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/_delta_log")
    fs = log_dir.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(log_dir) or len(fs.listStatus(log_dir)) > 0:
        return False
    # not recursive: fails, rather than deleting, if a concurrent creator wrote its first commit meanwhile
    return bool(fs.delete(log_dir, False))
