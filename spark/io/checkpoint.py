"""What a streaming checkpoint records about one micro-batch: the Kafka offsets or Delta versions it covers and its
watermark.

Spark writes ``offsets/<batch>`` (its write-ahead log) before it runs the batch, and the Kafka source writes its
starting offsets to ``sources/0/0`` when the checkpoint is new, so a batch handler can read what its batch covers
without running a Spark job. A replay of the batch reads the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from lakehouse.spark.errors import SparkJobError
from lakehouse.spark.io.delta import Table, delta_ref, table_location


@dataclass(frozen=True)
class BatchOffsets:
    """The Kafka offsets of one micro-batch (``start`` inclusive, ``end`` exclusive, per ``topic-partition``) and
    the event-time watermark the batch ran with (epoch milliseconds, 0 before the first one)."""

    start: dict[str, int]
    end: dict[str, int]
    watermark_ms: int

    def ranges(self) -> dict[str, list[int]]:
        """First and last offset read from each partition (partitions the batch read nothing from are left out)."""
        return {
            partition: [self.start.get(partition, 0), last - 1]
            for partition, last in sorted(self.end.items())
            if last > self.start.get(partition, 0)
        }


def _local_path(location: str) -> Path | None:
    """``location`` as a local path, or None when it is on another file system (read through Spark)."""
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return None
    return Path(parsed.path if parsed.scheme else location)


def _read_text(spark: SparkSession, location: str) -> str | None:
    path = _local_path(location)
    if path is not None:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    from pyspark.errors import AnalysisException

    try:
        rows = spark.read.text(location, wholetext=True).collect()
    except AnalysisException:
        return None
    return str(rows[0][0]) if rows else None


def state_operator(spark: SparkSession, checkpoint: str) -> str | None:
    """The name of the first stateful operator whose state ``checkpoint`` holds, as Spark's version 1 operator
    metadata records it (``dedupeWithinWatermark`` for Spark's own dedup); None when there is none (a new
    checkpoint, or one whose operator writes version 2 metadata, as ``transformWithState`` does)."""
    text = _read_text(spark, f"{checkpoint.rstrip('/')}/state/0/_metadata/metadata")
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    name = json.loads(lines[1]).get("operatorInfo", {}).get("operatorName")
    return str(name) if name else None


def _flatten(source_offsets: str) -> dict[str, int]:
    """``{"topic": {"0": 12}}`` -> ``{"topic-0": 12}``."""
    return {
        f"{topic}-{partition}": int(offset)
        for topic, partitions in json.loads(source_offsets).items()
        for partition, offset in partitions.items()
    }


def _log_lines(spark: SparkSession, location: str) -> list[str]:
    text = _read_text(spark, location)
    if text is None:
        raise SparkJobError(
            f"the streaming checkpoint has no {location}: it is damaged or was changed while the query ran; "
            "see 'A damaged checkpoint' in docs/runbook.md"
        )
    return [line for line in text.splitlines() if line.strip()]


def batch_offsets(spark: SparkSession, checkpoint: str, batch_id: int) -> BatchOffsets:
    """The offsets and watermark of micro-batch ``batch_id`` of the single-source query at ``checkpoint``."""
    root = checkpoint.rstrip("/")
    # offsets/<n>: a version line, the batch metadata (watermark, time, confs), then one line per source
    current = _log_lines(spark, f"{root}/offsets/{batch_id}")
    metadata = json.loads(current[1])
    if batch_id > 0:
        start = _flatten(_log_lines(spark, f"{root}/offsets/{batch_id - 1}")[2])
    else:
        initial = _log_lines(spark, f"{root}/sources/0/0")
        start = _flatten(initial[-1])
    return BatchOffsets(start=start, end=_flatten(current[2]), watermark_ms=int(metadata.get("batchWatermarkMs", 0)))


def has_batches(spark: SparkSession, checkpoint: str) -> bool:
    """True when the query at ``checkpoint`` has planned a micro-batch (its offset log is not empty)."""
    location = f"{checkpoint.rstrip('/')}/offsets"
    folder = _local_path(location)
    if folder is not None:
        return folder.is_dir() and any(entry.name.isdigit() for entry in folder.iterdir())
    from pyspark.errors import AnalysisException

    try:
        return bool(spark.read.text(f"{location}/*").limit(1).count())
    except AnalysisException:
        return False


def is_committed(spark: SparkSession, checkpoint: str, batch_id: int) -> bool:
    """True when the query at ``checkpoint`` has ``batch_id`` in its commit log (a restart goes on after it)."""
    location = f"{checkpoint.rstrip('/')}/commits/{batch_id}"
    path = _local_path(location)
    if path is not None:
        return path.is_file()
    return _read_text(spark, location) is not None


@dataclass(frozen=True)
class DeltaBatchInput:
    """What one micro-batch of a query reading a Delta table as a stream read: the table versions ``first`` to
    ``last`` (both None when the batch finished no commit), its rows and the range of ``time_column`` in them
    (from the commits' file statistics), and the watermark the batch ran with (epoch milliseconds).

    A commit counts in the batch that finishes reading it; the initial snapshot of a new checkpoint counts, with
    the commits read after it, as the table at the batch's last version. Commits that rewrite rows (``rebuild-silver``)
    are skipped by the query (``skipChangeCommits``) and not counted."""

    first: int | None
    last: int | None
    rows: int
    min_time: datetime | None
    max_time: datetime | None
    watermark_ms: int

    def ranges(self) -> list[int]:
        """``[first, last]`` version read, or ``[]``."""
        return [] if self.first is None or self.last is None else [self.first, self.last]


def delta_batch_input(
    spark: SparkSession, checkpoint: str, batch_id: int, table: Table, time_column: str
) -> DeltaBatchInput:
    """The input of micro-batch ``batch_id`` of the single-source query at ``checkpoint`` reading the Delta table
    ``table``. Reads the offset log and the table's commit files; only the batch that finishes a new
    checkpoint's initial snapshot runs a Spark job (a count of the table at that version)."""
    root = checkpoint.rstrip("/")
    current = _log_lines(spark, f"{root}/offsets/{batch_id}")
    watermark_ms = int(json.loads(current[1]).get("batchWatermarkMs", 0))
    end = json.loads(current[2])
    start = json.loads(_log_lines(spark, f"{root}/offsets/{batch_id - 1}")[2]) if batch_id > 0 else None
    end_version = int(end["reservoirVersion"])  # versions before it are read completely
    if end.get("isStartingVersion"):  # still inside the initial snapshot
        return DeltaBatchInput(None, None, 0, None, None, watermark_ms)
    if start is None or start.get("isStartingVersion"):
        return _snapshot_input(spark, table, end_version - 1, time_column, watermark_ms)
    versions = range(int(start["reservoirVersion"]), end_version)
    rows, low, high = 0, None, None
    log_folder = f"{table_location(spark, table).rstrip('/')}/_delta_log" if versions else ""
    for version in versions:
        text = _read_text(spark, f"{log_folder}/{version:020d}.json")
        actions = [json.loads(line) for line in (text or "").splitlines() if line.strip()]
        if any(a.get("remove", {}).get("dataChange") for a in actions):
            continue
        for add in (a["add"] for a in actions if "add" in a and a["add"].get("dataChange", True)):
            stats = json.loads(add.get("stats") or "{}")
            rows += int(stats.get("numRecords", 0))
            low = _earliest(low, stats.get("minValues", {}).get(time_column))
            high = _latest(high, stats.get("maxValues", {}).get(time_column))
    if not versions:
        return DeltaBatchInput(None, None, 0, None, None, watermark_ms)
    return DeltaBatchInput(versions[0], versions[-1], rows, low, high, watermark_ms)


def _snapshot_input(
    spark: SparkSession, table: Table, version: int, time_column: str, watermark_ms: int
) -> DeltaBatchInput:
    from pyspark.sql import functions as F

    stats = (
        spark.sql(f"SELECT * FROM {delta_ref(table)} VERSION AS OF {int(version)}")
        .agg(F.count(F.lit(1)), F.min(time_column), F.max(time_column))
        .first()
    )
    assert stats is not None
    return DeltaBatchInput(0, version, int(stats[0]), stats[1], stats[2], watermark_ms)


def _parse_time(value: str | None) -> datetime | None:
    """A timestamp of Delta's file statistics (``2026-11-20T10:00:00.000Z``) as naive UTC."""
    if value is None:
        return None
    return datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None)


def _earliest(current: datetime | None, value: str | None) -> datetime | None:
    parsed = _parse_time(value)
    return parsed if current is None or (parsed is not None and parsed < current) else current


def _latest(current: datetime | None, value: str | None) -> datetime | None:
    parsed = _parse_time(value)
    return parsed if current is None or (parsed is not None and parsed > current) else current
