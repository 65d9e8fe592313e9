"""The Spark side of the streaming benchmark: the Silver tables pre-filled to steady state, what was produced
(read back from Kafka with the load's labels), the correctness gates, the freshness of every event from its send
time to the Delta commit that made it visible in Silver, and the per-row ceiling of the stream's rules."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config.settings import Settings
from lakehouse.config.specs import EventTypeSpec
from lakehouse.kafka.generator import INVALID_FAULTS, MALFORMED_FAULTS, GeneratorOptions, generate
from lakehouse.scripts.bench_stream_load import HEADER
from lakehouse.scripts.bench_stream_stats import commit_times
from lakehouse.scripts.errors import BenchError
from lakehouse.spark.io import kafka as kafka_io
from lakehouse.spark.io import reference
from lakehouse.spark.io.delta import read_table
from lakehouse.spark.jobs.common import ensure_silver_table
from lakehouse.spark.jobs.stream import DEAD_LETTER_TABLE, QUARANTINE_TABLE
from lakehouse.spark.transforms import bronze, silver

VALID = ("clean", "late", "duplicate")
COORDINATES = ("topic", "partition", "offset")
PREFILL_BATCH = "bench:prefill"
_KAFKA_SCHEMA = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
_DAY_MS = 86_400_000


def _checked_events(kafka_rows: DataFrame, spec: EventTypeSpec, *, carry_bronze: bool = False) -> DataFrame:
    """The stream's per-row rules on Kafka source rows: classify, parse against the contracts, quality rules
    (with ``carry_bronze``, every message is kept with its Bronze columns, as the stream keeps them)."""
    classified = bronze.classify(
        bronze.from_kafka(kafka_rows), spec.event_types, spec.versions, spec.max_message_bytes, keep_parsed=True
    )
    return silver.apply_quality_rules(silver.parse_events(classified, spec, carry_bronze=carry_bronze), spec)


def prefill_silver(
    spark: SparkSession,
    settings: Settings,
    specs: Sequence[EventTypeSpec],
    rows: int,
    days: int,
    last_day: date,
    sample: int = 2000,
) -> dict[str, Any]:
    """Write ``rows`` Silver rows, split evenly over the event types, with event dates spread evenly over the
    ``days`` days up to ``last_day``, as the stream would have written them: a sample of clean generated events
    goes through the stream's own transforms (classify, parse, quality rules, enrichment), and each table's rows
    are copies of its sample with a fresh ``event_id``, event time and Kafka coordinates. One file per partition
    (tenant, date), as after compaction."""
    started = time.perf_counter()
    tables = sorted({j.reference for spec in specs for j in spec.enrich})
    reference.refresh(spark, settings, tables)
    references = {table: reference.current(spark, settings, table) for table in tables}
    first = last_day - timedelta(days=days - 1)
    first_ms = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1000)
    written: dict[str, int] = {}
    for index, spec in enumerate(specs):
        count = rows // len(specs) + (1 if index < rows % len(specs) else 0)
        # clean events of the last two days (event times in the future would break the rule not_in_future)
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
        messages = generate(spec, sample, GeneratorOptions(seed=1000 + index, start=start))
        source = spark.createDataFrame(
            [(m.key, m.value, f"{spec.name}_prefill", 0, i, datetime.now(UTC)) for i, m in enumerate(messages)],
            _KAFKA_SCHEMA,
        )
        # the stream's own Silver columns (with a sentiment scoring's, null: no model scored the prefill)
        template = silver.silver_rows(silver.accepted(_checked_events(source, spec)), spec, references, PREFILL_BATCH)
        # the sample's offsets are 0..sample-1: the copy with id k is made from the sample row at offset k % sample
        template = template.withColumn("_t", F.col("_kafka_offset")).cache()
        size = template.count()
        if size != sample:
            raise BenchError(f"{sample - size} of {sample} clean generated {spec.name} events failed the Silver rules")
        # id % days picks the day, so every day gets the same number of rows; the rest of id picks the time
        event_ms = F.lit(first_ms) + (F.col("id") % days) * _DAY_MS + F.expr(f"id div {days}") * 7919 % _DAY_MS
        override: dict[str, Column] = {
            "event_id": F.expr("uuid()"),
            "event_timestamp": F.timestamp_millis(event_ms),
            "event_date": F.to_date(F.timestamp_millis(event_ms)),
            "_kafka_partition": F.col("id") % 3,
            "_kafka_offset": F.col("id"),
            "_ingested_at": F.timestamp_millis(event_ms + 1000),
            "_processed_at": F.timestamp_millis(event_ms + 2000),
        }
        types = dict(template.dtypes)
        columns = [
            (override[c].cast(types[c]) if c in override else F.col(c)).alias(c) for c in template.columns if c != "_t"
        ]
        copies = spark.range(count).withColumn("_t", F.col("id") % size).join(F.broadcast(template), "_t")
        prefilled = copies.select(*columns)
        # created as the stream creates it, with its table properties
        ensure_silver_table(spark, settings.storage.table("silver", spec.tables.silver), prefilled, spec.partition_by)
        (
            prefilled.repartition(*spec.partition_by)
            .write.format("delta")
            .mode("overwrite")
            .partitionBy(*spec.partition_by)
            .save(settings.storage.table_path("silver", spec.tables.silver))
        )
        template.unpersist()
        written[spec.name] = count
    return {"rows": written, "days": days, "last_day": last_day.isoformat(), "seconds": time.perf_counter() - started}


def produced(spark: SparkSession, settings: Settings, topics: Sequence[str]) -> DataFrame:
    """Every message of the topics as Kafka holds it: coordinates, send time (CreateTime, epoch ms), the load's
    label and the event id (null unless the value is a JSON object with one)."""
    options = {
        **kafka_io.source_options(settings, ",".join(topics), None),
        "includeHeaders": "true",
        "endingOffsets": "latest",
    }
    return (
        spark.read.format("kafka")
        .options(**options)
        .load()
        .select(
            *COORDINATES,
            F.expr("unix_millis(timestamp)").alias("sent_ms"),
            F.expr(f"cast(filter(headers, h -> h.key = '{HEADER}')[0].value AS string)").alias("label"),
            F.get_json_object(F.col("value").cast("string"), "$.event_id").alias("event_id"),
        )
    )


def silver_rows(spark: SparkSession, settings: Settings, specs: Sequence[EventTypeSpec]) -> DataFrame:
    """The Silver rows the stream wrote from the event types' topics, with their coordinates and batch."""
    frames = []
    for spec in specs:
        table = read_table(spark, settings.storage.table_path("silver", spec.tables.silver))
        if table is None:
            continue
        frames.append(
            table.where(F.col("_kafka_topic") == spec.topic).select(
                F.col("_kafka_topic").alias("topic"),
                F.col("_kafka_partition").alias("partition"),
                F.col("_kafka_offset").alias("offset"),
                F.col(spec.dedup_key).alias("event_id"),
                "event_date",
                "_silver_batch",
            )
        )
    if not frames:
        return spark.createDataFrame(
            [], "topic string, partition int, offset long, event_id string, event_date date, _silver_batch string"
        )
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    return rows


def _table_or_empty(spark: SparkSession, path: str, schema: str) -> DataFrame:
    table = read_table(spark, path)
    return table if table is not None else spark.createDataFrame([], schema)


def _compare(expected: DataFrame, found: DataFrame, keys: Sequence[str], repeated_by: Sequence[str]) -> dict[str, int]:
    """How many ``expected`` keys ``found`` lacks, how many of its rows were not expected, and how many
    ``repeated_by`` values it holds more than once."""
    return {
        "expected": expected.count(),
        "found": found.count(),
        "missing": expected.join(found, list(keys), "left_anti").count(),
        "unexpected": found.join(expected, list(keys), "left_anti").count(),
        "repeated": found.groupBy(*repeated_by).count().where("count > 1").count(),
    }


GATE_CHECKS = ("missing", "unexpected", "repeated", "not_at_a_copy")


def gates(spark: SparkSession, settings: Settings, specs: Sequence[EventTypeSpec], truth: DataFrame) -> dict[str, Any]:
    """The correctness gates of one run, from what Kafka holds (``truth``): Silver has exactly one row per valid
    event (clean, late or duplicated; by topic and event id), each at the coordinates of one of the event's copies,
    and no (event_id, event_date) twice; the quarantine has exactly the contract-invalid messages and the dead
    letters exactly the malformed ones (by topic, partition and offset)."""
    topics = [spec.topic for spec in specs]
    lake = settings.storage
    found = silver_rows(spark, settings, specs).cache()
    valid = truth.where(F.col("label").isin(*VALID))
    silver_gate = _compare(
        valid.select("topic", "event_id").distinct(), found, ["topic", "event_id"], ["event_id", "event_date"]
    )
    silver_gate["not_at_a_copy"] = found.join(valid, [*COORDINATES, "event_id"], "left_anti").count()
    found.unpersist()
    quarantine = _table_or_empty(spark, lake.table_path("silver", QUARANTINE_TABLE), silver.QUARANTINE_SCHEMA)
    quarantined = quarantine.where(F.col("_kafka_topic").isin(*topics)).select(
        F.col("_kafka_topic").alias("topic"),
        F.col("_kafka_partition").alias("partition"),
        F.col("_kafka_offset").alias("offset"),
    )
    dead = _table_or_empty(spark, lake.table_path("bronze", DEAD_LETTER_TABLE), bronze.DEAD_LETTER_SCHEMA)
    dead_letters = dead.where(F.col("topic").isin(*topics)).select(*COORDINATES)
    invalid = truth.where(F.col("label").isin(*INVALID_FAULTS)).select(*COORDINATES)
    malformed = truth.where(F.col("label").isin(*MALFORMED_FAULTS)).select(*COORDINATES)
    checked = {
        "silver": silver_gate,
        "quarantine": _compare(invalid, quarantined, COORDINATES, COORDINATES),
        "dead_letters": _compare(malformed, dead_letters, COORDINATES, COORDINATES),
    }
    return {
        "messages": truth.count(),
        "labels": {str(r["label"]): int(r["count"]) for r in truth.groupBy("label").count().collect()},
        **checked,
        "passed": all(gate.get(check, 0) == 0 for gate in checked.values() for check in GATE_CHECKS),
    }


def silver_commit_times(settings: Settings, specs: Sequence[EventTypeSpec], since: float) -> dict[str, int]:
    """``_silver_batch`` tag -> commit time (epoch ms) of every stream commit to the event types' Silver tables
    written since ``since`` (epoch seconds), read from the tables' ``_delta_log`` JSON files."""
    texts = []
    for spec in specs:
        location = settings.storage.table_path("silver", spec.tables.silver)
        log_dir = Path(urlparse(location).path if location.startswith("file:") else location) / "_delta_log"
        texts += [p.read_text() for p in sorted(log_dir.glob("*.json")) if p.stat().st_mtime >= since - 5]
    return commit_times(texts)


def freshness(
    spark: SparkSession,
    settings: Settings,
    specs: Sequence[EventTypeSpec],
    truth: DataFrame,
    commits: dict[str, int],
    since_ms: int,
) -> dict[str, Any]:
    """Send time -> visible in Silver, per event sent from ``since_ms``: the Kafka timestamp of the copy Silver
    kept, to the time of the commit named by the row's ``_silver_batch``. ``unmapped`` counts Silver rows of the
    run whose batch has no such commit (must be 0)."""
    commit_frame = spark.createDataFrame(list(commits.items()), "_silver_batch string, commit_ms long")
    rows = (
        silver_rows(spark, settings, specs)
        .join(truth.select(*COORDINATES, "sent_ms"), list(COORDINATES))
        .join(F.broadcast(commit_frame), "_silver_batch", "left")
    )
    unmapped = rows.where(F.col("commit_ms").isNull()).count()
    latency = rows.where((F.col("sent_ms") >= since_ms) & F.col("commit_ms").isNotNull()).select(
        (F.col("commit_ms") - F.col("sent_ms")).alias("ms")
    )
    stats = latency.agg(
        F.count(F.lit(1)).alias("events"),
        F.expr("percentile(ms, array(0.5, 0.95, 0.99))").alias("q"),
        F.max("ms").alias("max"),
        F.min("ms").alias("min"),
    ).first()
    assert stats is not None
    quantiles = stats["q"] or [None, None, None]
    seconds = [None if q is None else q / 1000 for q in quantiles]
    return {
        "events": stats["events"],
        "unmapped": unmapped,
        "p50_s": seconds[0],
        "p95_s": seconds[1],
        "p99_s": seconds[2],
        "max_s": None if stats["max"] is None else stats["max"] / 1000,
        "min_s": None if stats["min"] is None else stats["min"] / 1000,
    }


def silver_duplicates(spark: SparkSession, settings: Settings, specs: Sequence[EventTypeSpec]) -> dict[str, int]:
    """Per Silver table, how many (dedup key, event_date) pairs it holds more than once (prefill included)."""
    counts = {}
    for spec in specs:
        table = read_table(spark, settings.storage.table_path("silver", spec.tables.silver))
        counts[spec.name] = (
            0 if table is None else table.groupBy(spec.dedup_key, "event_date").count().where("count > 1").count()
        )
    return counts


def rules_ceiling(
    spark: SparkSession, settings: Settings, specs: Sequence[EventTypeSpec], repeats: int = 3
) -> dict[str, Any]:
    """The stream's per-row rules (classify, parse, quality rules) over the messages of the event types' topics,
    read from Kafka, into a no-op sink; and the Kafka read alone. Median of ``repeats`` after a warm-up."""
    sources = [
        spark.read.format("kafka").options(**kafka_io.source_options(settings, spec.topic, None)).load()
        for spec in specs
    ]
    messages = sum(frame.count() for frame in sources)

    def timed(frames: list[DataFrame]) -> float:
        started = time.perf_counter()
        for frame in frames:
            frame.write.format("noop").mode("overwrite").save()
        return time.perf_counter() - started

    checked = [_checked_events(frame, spec, carry_bronze=True) for frame, spec in zip(sources, specs, strict=True)]
    timed(checked)  # warm-up: code generation, JIT
    rules_s = statistics.median(timed(checked) for _ in range(repeats))
    read_s = statistics.median(timed(sources) for _ in range(repeats))
    # the rules alone: the messages read once into memory first, so that neither the read nor its consumers'
    # start-up (seconds on a small input) counts
    cached = [frame.cache() for frame in sources]
    for frame in cached:
        frame.count()
    on_cached = [_checked_events(frame, spec, carry_bronze=True) for frame, spec in zip(cached, specs, strict=True)]
    timed(on_cached)
    cached_rules_s = statistics.median(timed(on_cached) for _ in range(repeats))
    for frame in cached:
        frame.unpersist()
    return {
        "messages": messages,
        "rules_s": rules_s,
        "events_per_s": messages / rules_s if rules_s else None,
        "kafka_read_s": read_s,
        "cached_rules_s": cached_rules_s,
        "repeats": repeats,
    }
