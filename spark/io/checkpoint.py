"""What a streaming checkpoint records about one micro-batch: the Kafka offsets it covers and its watermark.

Spark writes ``offsets/<batch>`` (its write-ahead log) before it runs the batch, and the Kafka source writes its
starting offsets to ``sources/0/0`` when the checkpoint is new, so a batch handler can read what its batch covers
without running a Spark job. A replay of the batch reads the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from lakehouse.spark.errors import SparkJobError


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


def _read_text(spark: SparkSession, location: str) -> str | None:
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme else location)
        return path.read_text(encoding="utf-8") if path.is_file() else None
    from pyspark.errors import AnalysisException

    try:
        rows = spark.read.text(location, wholetext=True).collect()
    except AnalysisException:
        return None
    return str(rows[0][0]) if rows else None


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
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        folder = Path(parsed.path if parsed.scheme else location)
        return folder.is_dir() and any(entry.name.isdigit() for entry in folder.iterdir())
    from pyspark.errors import AnalysisException

    try:
        return bool(spark.read.text(f"{location}/*").limit(1).count())
    except AnalysisException:
        return False
