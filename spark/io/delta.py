"""Delta Lake reads and writes. Every write is idempotent: a streaming append names its checkpoint's id and its batch
in the commit (``append_once``), batch rewrites replace exactly their partitions."""

from __future__ import annotations

import datetime
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlparse

from pyspark.sql import DataFrame, DataFrameReader, DataFrameWriter, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import DataStreamReader

from lakehouse.config.settings import LakeTable
from lakehouse.spark.errors import SparkJobError

log = logging.getLogger(__name__)
T = TypeVar("T")

# a table of the lake, or the path of one
Table = LakeTable | str


def lake_table(table: Table) -> LakeTable:
    """``table`` as a ``LakeTable`` (a string is a path)."""
    return table if isinstance(table, LakeTable) else LakeTable(None, table)


def delta_ref(table: Table) -> str:
    """SQL reference to a Delta table: its quoted catalog name, else ``delta.`<path>```."""
    ref = lake_table(table)
    if ref.name:
        return quote_name(ref.name)
    return "delta.`{}`".format(str(ref.path).replace("`", "``"))


def quote_name(name: str) -> str:
    """A dotted catalog name (``lakehouse.silver.orders``) with each part quoted for SQL."""
    return ".".join("`{}`".format(part.replace("`", "``")) for part in name.split("."))


def load(reader: DataFrameReader | DataStreamReader, table: Table) -> DataFrame:
    """Read ``table`` with ``reader`` (batch or streaming): by name where it has one, else by path."""
    ref = lake_table(table)
    return reader.table(ref.name) if ref.name else reader.format("delta").load(ref.path)


def save(spark: SparkSession, writer: DataFrameWriter, table: Table) -> None:
    """Write with ``writer`` (format delta, mode and options set) to ``table``: by name where it has one (as an
    external table at its path, if it has one; its schema is created where missing), else to its path."""
    ref = lake_table(table)
    if ref.name is None:
        writer.save(ref.path)
        return
    _ensure_schema(spark, ref.name.rsplit(".", 1)[0])
    if ref.path is None:
        writer.saveAsTable(ref.name)
    else:
        writer.option("path", ref.path).saveAsTable(ref.name)


def table_location(spark: SparkSession, table: Table) -> str:
    """Where ``table``'s files are (its catalog's answer for a managed table)."""
    ref = lake_table(table)
    if ref.path:
        return ref.path
    detail = spark.sql(f"DESCRIBE DETAIL {delta_ref(ref)}").select("location").first()
    assert detail is not None
    return str(detail[0])


_MISSING_TABLE = (
    "DELTA_MISSING_DELTA_TABLE",
    "DELTA_TABLE_NOT_FOUND",
    "DELTA_TABLE_ONLY_OPERATION",
    "DELTA_PATH_DOES_NOT_EXIST",
    "PATH_NOT_FOUND",
    "TABLE_OR_VIEW_NOT_FOUND",
    "SCHEMA_NOT_FOUND",
)


def read_table(spark: SparkSession, table: Table) -> DataFrame | None:
    """The Delta table ``table``, or None when there is none. Resolving the schema loads the table's snapshot
    (also over Spark Connect, where reads are otherwise lazy); no Spark job runs."""
    from pyspark.errors import AnalysisException

    try:
        frame = load(spark.read, table)
        _ = frame.schema
    except AnalysisException as exc:
        if exc.getCondition() in _MISSING_TABLE:
            return None
        raise
    return frame


def table_exists(spark: SparkSession, table: Table) -> bool:
    """True when the Delta table ``table`` exists."""
    return read_table(spark, table) is not None


def table_is_empty(spark: SparkSession, table: Table) -> bool:
    """True when there is no Delta table ``table`` or it has no rows."""
    frame = read_table(spark, table)
    return frame is None or frame.limit(1).count() == 0


# the keys of a streaming append's commit (``userMetadata``) that name its checkpoint's id and its batch
MARK_APP_ID = "txn_app_id"
MARK_VERSION = "txn_version"
_HISTORY_PAGES = (20, 400)  # commits read per look back, then all of them
# the last batch an app id committed when it committed none (batch ids start at 0)
NOTHING_COMMITTED = -1


class AppendLedger:
    """What one run of a streaming query knows of its own appends: per table, the last batch that is committed.

    Delta's own idempotent append (``txnAppId``/``txnVersion``) reads the table's whole state to find the last
    version of an app id, a Spark job on every append of delta-spark 4.4 (delta-io/delta#7670). A run's first append
    to a table looks instead for the newest commit that names the app id (``marked_version``, newest first); after
    that the run knows: its batch ids only grow, and Spark runs each batch once per run. Two runs of one checkpoint
    at the same time are not supported by Spark either.

    ``new_app_id`` is an app id this run created (``checkpoint_app_id`` of a new checkpoint): no commit can name it,
    nor an id derived from it (``<id>:<suffix>``), so their first appends look nothing up either."""

    def __init__(self, new_app_id: str | None = None) -> None:
        self._last: dict[tuple[str, str], int] = {}
        self._new_app_id = new_app_id
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        # a Spark Connect server runs the stream's handler in a process of its own: the ledger travels pickled
        return {"_last": dict(self._last), "_new_app_id": self._new_app_id}

    def __setstate__(self, state: dict[str, object]) -> None:
        self._last = dict(cast(dict[tuple[str, str], int], state["_last"]))
        self._new_app_id = cast(str | None, state.get("_new_app_id"))
        self._lock = threading.Lock()

    def last(self, spark: SparkSession, table: Table, app_id: str) -> int | None:
        """The last batch of ``app_id`` committed to ``table``: ``NOTHING_COMMITTED`` for a new app id, None when
        no commit names it (a table written before commits named their batch may still hold one)."""
        key = (delta_ref(table), app_id)
        with self._lock:
            if key in self._last:
                return self._last[key]
            if self._new_app_id is not None and app_id.split(":", 1)[0] == self._new_app_id:
                self._last[key] = NOTHING_COMMITTED
                return NOTHING_COMMITTED
        found = marked_version(spark, table, app_id)
        if found is not None:
            self.record(table, app_id, found)
        return found

    def record(self, table: Table, app_id: str, version: int) -> None:
        """Note that batch ``version`` of ``app_id`` is committed to ``table``."""
        with self._lock:
            key = (delta_ref(table), app_id)
            self._last[key] = max(version, self._last.get(key, version))


def marked_version(spark: SparkSession, table: Table, app_id: str) -> int | None:
    """The batch named by the newest commit of ``table`` whose metadata names ``app_id``, or None."""
    from pyspark.errors import AnalysisException

    local = _local_commit_metadata(table)
    if local is not None:
        return next((mark[1] for mark in map(_mark, local) if mark is not None and mark[0] == app_id), None)
    pages: list[int | None] = [*_HISTORY_PAGES, None]
    for limit in pages:
        query = f"DESCRIBE HISTORY {delta_ref(table)}" + (f" LIMIT {limit}" if limit else "")
        try:
            commits = spark.sql(query).select("userMetadata").collect()
        except AnalysisException as exc:
            if exc.getCondition() in (*_MISSING_TABLE, "DELTA_TABLE_ONLY_OPERATION"):
                return None  # no table yet: nothing committed
            raise
        for (metadata,) in commits:
            mark = _mark(metadata)
            if mark is not None and mark[0] == app_id:
                return mark[1]
        if limit is None or len(commits) < limit:
            return None
    return None


_COMMIT_FILE = re.compile(r"\d{20}\.json")


def _local_commit_metadata(table: Table) -> Iterator[str | None] | None:
    """The ``userMetadata`` of a local table's commits, newest first, read from its log's commit files as ``DESCRIBE
    HISTORY`` reads them, without a Spark job (seconds each on two busy cores); nothing when there is no table
    yet. None for a table reached through Spark (by catalog name, or on another file system)."""
    ref = lake_table(table)
    log_dir = _local_path(f"{ref.path.rstrip('/')}/_delta_log") if ref.path else None
    if log_dir is None:
        return None
    commits = sorted((p for p in log_dir.glob("*.json") if _COMMIT_FILE.fullmatch(p.name)), reverse=True)

    def metadata() -> Iterator[str | None]:
        for commit in commits:
            with commit.open() as lines:
                info: dict[str, Any] = next((a["commitInfo"] for a in map(json.loads, lines) if "commitInfo" in a), {})
            yield info.get("userMetadata")

    return metadata()


def _mark(metadata: str | None) -> tuple[str, int] | None:
    try:
        tags = json.loads(metadata) if metadata else None
    except ValueError:
        return None
    if not isinstance(tags, dict) or MARK_APP_ID not in tags:
        return None
    return str(tags[MARK_APP_ID]), int(tags[MARK_VERSION])


def append_once(
    df: DataFrame,
    table: Table,
    app_id: str,
    version: int,
    partition_by: Sequence[str] = (),
    tags: Mapping[str, object] | None = None,
    ledger: AppendLedger | None = None,
) -> int | None:
    """Append ``df`` unless batch ``version`` of ``app_id`` was already committed to the table (a replayed batch).
    The commit's ``userMetadata`` (``DESCRIBE HISTORY``) is ``tags`` as JSON, with the app id and the batch.

    With a ``ledger`` (one per run of a streaming query) the check costs no Spark job after the run's first append
    to the table (``AppendLedger``). Without one, or when no commit of the table names the app id yet (a table
    written before commits named their batch), Delta's own check decides (``txnAppId``/``txnVersion``).

    Returns the number of rows appended, counted while writing them, or None when the append was skipped (or the
    count did not arrive with the write, which a Spark Connect session does not promise)."""
    spark = df.sparkSession
    last = ledger.last(spark, table, app_id) if ledger is not None else None
    if last is not None and version <= last:
        return None
    observation = Observation(f"append-{uuid.uuid4().hex}")
    writer = (
        df.observe(observation, F.count(F.lit(1)).alias("rows"))
        .write.format("delta")
        .mode("append")
        .option("mergeSchema", "false")
        .option("userMetadata", json.dumps({**(tags or {}), MARK_APP_ID: app_id, MARK_VERSION: version}))
    )
    if last is None:
        writer = writer.option("txnAppId", app_id).option("txnVersion", str(version))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    save(spark, writer, table)
    if ledger is not None:
        ledger.record(table, app_id, version)
    return _observed_rows(observation)


def observed(observation: Observation) -> dict[str, Any]:
    """What ``observation`` collected, or ``{}`` when its frame was never run (a skipped append runs no query,
    so nothing is observed). A classic session's ``Observation.get`` would wait forever then; a Spark Connect
    session's gives what came back with the action, ``{}`` when none ran."""
    jvm_observation = getattr(observation, "_jo", None)
    if jvm_observation is None:
        return dict(observation.get) if _is_connect(observation) else {}
    if not jvm_observation.future().isCompleted():
        return {}
    # completed without metrics: a write by table name that Delta skipped
    if jvm_observation.getRow().length() == 0:
        return {}
    return dict(observation.get)


def _is_connect(observation: Observation) -> bool:
    from pyspark.sql.connect.observation import Observation as ConnectObservation

    return isinstance(observation, ConnectObservation)


def _observed_rows(observation: Observation) -> int | None:
    values = observed(observation)
    return int(values["rows"]) if values else None


def replace_range(
    df: DataFrame, table: Table, column: str, start: str, end: str, partition_by: Sequence[str] = ()
) -> None:
    """Replace the rows with ``start <= column < end`` by ``df`` in one atomic commit (replaceWhere). A commit of
    another writer to those partitions meanwhile (the streaming query of a mart) makes Delta refuse the commit;
    the replacement is then computed and written again, a few times at most (``df`` is read again each time)."""
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"{column} >= '{start}' AND {column} < '{end}'")
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    retry_on_conflict(lambda: save(df.sparkSession, writer, table), f"replacing {column} {start}..{end} of {table}")


CONFLICT_ATTEMPTS = 5


def retry_on_conflict(action: Callable[[], T], what: str, attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run an idempotent Delta write, again when a concurrent commit made Delta refuse it (optimistic
    concurrency: ``ConcurrentAppendException`` and the other exceptions of ``delta.exceptions``), up to
    ``attempts`` times with a short pause."""
    import delta.exceptions

    # the exceptions do not share a base class: every one of the module's
    conflicts = tuple(getattr(delta.exceptions, name) for name in delta.exceptions.__all__)
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except conflicts as exc:
            if attempt == attempts:
                raise
            log.warning(
                "%s: a concurrent commit conflicted (%s); attempt %d of %d",
                what,
                type(exc).__name__,
                attempt + 1,
                attempts,
            )
            time.sleep(min(0.5 * 2**attempt, 5.0))
    raise AssertionError("unreachable")


def merge_rows(
    rows: DataFrame,
    table: Table,
    key: Sequence[str],
    partition_column: str,
    partitions: Sequence[object],
    never_lower: Sequence[str] = (),
) -> None:
    """MERGE ``rows`` into the Delta table ``table`` on ``key``: insert new keys, replace the values of
    existing ones, so that the same rows again change nothing. The table's ``partition_column`` must be one of
    the key columns and ``partitions`` every value it has in ``rows``: the MERGE then reads (and conflicts with
    other writers on) those partitions only. A row is not updated when a column of ``never_lower`` would become
    smaller (see ``lakehouse.postgres.upsert.upsert``). Retried on a concurrent commit (``retry_on_conflict``)."""
    in_partitions = ", ".join(_sql_literal(value) for value in partitions)
    condition = " AND ".join(
        [f"t.`{partition_column}` IN ({in_partitions})", *(f"t.`{column}` = s.`{column}`" for column in key)]
    )
    values = [c for c in rows.columns if c not in key]
    unchanged = "struct({}) <=> struct({})".format(
        ", ".join(f"t.`{c}`" for c in values), ", ".join(f"s.`{c}`" for c in values)
    )
    # a NULL on either side does not block the update
    update = " AND ".join([f"NOT ({unchanged})", *(f"NOT coalesce(s.`{c}` < t.`{c}`, false)" for c in never_lower)])
    # SQL rather than the DeltaTable API, which a Spark Connect session does not have
    source = f"merge_source_{uuid.uuid4().hex}"
    rows.createOrReplaceTempView(source)
    statement = (
        f"MERGE INTO {delta_ref(table)} t USING {source} s ON {condition} "
        f"WHEN MATCHED AND {update} THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )
    try:
        retry_on_conflict(
            lambda: rows.sparkSession.sql(statement).collect(),
            f"merging {len(partitions)} {partition_column} partition(s) into {table}",
        )
    finally:
        rows.sparkSession.catalog.dropTempView(source)


def _sql_literal(value: object) -> str:
    if isinstance(value, datetime.date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _local_path(location: str) -> Path | None:
    """``location`` as a local path, or None when it is on another file system (reached through Spark)."""
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return None
    return Path(parsed.path if parsed.scheme else location)


def _path_exists(spark: SparkSession, location: str) -> bool:
    """Whether a file exists at ``location`` (through Spark's reader where it is not local)."""
    from pyspark.errors import AnalysisException

    path = _local_path(location)
    if path is not None:
        return path.exists()
    try:
        spark.read.format("binaryFile").load(location).schema  # noqa: B018 (resolving the path is the check)
    except AnalysisException:
        return False
    return True


def checkpoint_app_id(spark: SparkSession, checkpoint: str) -> str:
    """A stable id for one streaming checkpoint, stored inside it (works on any Hadoop file system).

    Delta transaction ids must change when a checkpoint is replaced, because a new checkpoint restarts batch
    ids at 0; keying idempotent writes on this id makes a fresh checkpoint a fresh writer.
    """
    return checkpoint_app_id_and_is_new(spark, checkpoint)[0]


def checkpoint_app_id_and_is_new(spark: SparkSession, checkpoint: str) -> tuple[str, bool]:
    """``checkpoint_app_id``, and whether this call created it (so no commit can name it yet)."""
    location = f"{checkpoint.rstrip('/')}/lakehouse_app_id"
    if _path_exists(spark, f"{location}/_SUCCESS"):
        rows = spark.read.text(location).collect()
        if rows and str(rows[0][0]).strip():
            return str(rows[0][0]).strip(), False
    # first start of this checkpoint (or a start killed before the id was fully written, so before any batch)
    app_id = str(uuid.uuid4())
    spark.createDataFrame([(app_id,)], "value string").coalesce(1).write.mode("overwrite").text(location)
    return app_id, True


def ensure_table(
    spark: SparkSession,
    table: Table,
    schema: str,
    partition_by: Sequence[str] = (),
    properties: Mapping[str, str] | None = None,
) -> None:
    """Create an empty Delta table with ``schema`` (and table ``properties``) unless one exists (so readers can
    start before writers). A named table's schema is created too where it is missing (a catalog that lets this job
    create schemas).

    A process killed while creating the table can leave an empty ``_delta_log`` folder, which ``CREATE TABLE IF
    NOT EXISTS`` takes for a table; such a folder (no file in it) is removed and creation retried.
    """
    ref = lake_table(table)
    partitions = f" PARTITIONED BY ({', '.join(f'`{c}`' for c in partition_by)})" if partition_by else ""
    location = ""
    if ref.name:
        _ensure_schema(spark, ref.name.rsplit(".", 1)[0])
        if ref.path:
            location = " LOCATION '{}'".format(ref.path.replace("'", "\\'"))
    settings = ", ".join(f"'{key}' = '{value}'" for key, value in (properties or {}).items())
    tblproperties = f" TBLPROPERTIES ({settings})" if settings else ""
    statement = (
        f"CREATE TABLE IF NOT EXISTS {delta_ref(ref)} ({schema}) USING delta{partitions}{location}{tblproperties}"
    )
    spark.sql(statement).collect()
    if read_table(spark, ref) is not None:
        return
    # the statement took the empty folder for a table and did nothing
    path = table_location(spark, ref)
    if not _remove_empty_log(path):
        raise SparkJobError(
            f"{path}/_delta_log holds no commit, so {path} is no Delta table: a creation was killed before its "
            "first commit; delete that _delta_log folder"
        )
    log.warning("removed the empty _delta_log of %s (a creation killed before its first commit)", path)
    spark.sql(statement).collect()


def _ensure_schema(spark: SparkSession, schema: str) -> None:
    """Create the catalog schema ``schema`` (``catalog.name``) unless it exists; an existing one needs no right to
    create schemas (Unity Catalog)."""
    if not spark.catalog.databaseExists(schema):
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {quote_name(schema)}").collect()


def _remove_empty_log(path: str) -> bool:
    """Delete ``<path>/_delta_log`` if it is a local folder that holds nothing; True when it did. (On another file
    system the error stands: the runbook names the folder to delete.)"""
    log_dir = _local_path(f"{path.rstrip('/')}/_delta_log")
    if log_dir is None or not log_dir.is_dir() or any(log_dir.iterdir()):
        return False
    try:
        log_dir.rmdir()  # fails, rather than deleting, if a concurrent creator wrote its first commit meanwhile
    except OSError:
        return False
    return True
