"""Hostile input against the stream's batch time, for ``make bench`` (issue 19: a 10 MB message, a 100-level
nested document, a NUL, an invalid surrogate or a million-element array is dead-lettered with a reason, and none of
them stalls a batch for more than its normal time).

1. Two inputs of ``orders``, each produced once to a topic of its own: ``clean``, generated clean orders, and
   ``hostile``, the same orders with the hostile set of ``lakehouse.kafka.generator.hostile`` (8 messages) spread
   among them. A small third topic of clean orders serves the warm-up.
2. One unmeasured warm-up run (two batches), then the measured runs in ABBA order (clean, hostile, hostile, clean,
   ...), so that neither input always runs on the less warmed-up JVM. Each run is
   the type's query, ``lakehouse.spark.jobs.stream.start(..., available_now=True)`` with ``max_records`` per
   batch, in this process's Spark session on a fresh lake, so both inputs are read in the same number of batches.
3. Measured: each batch's ``durationMs.triggerExecution`` from the query's progress, and the run's seconds from
   the query's start to its termination. A batch holds hostile input when a dead-lettered or quarantined message's
   offset lies in its offset range. A batch's **normal time** is the slowest batch of the clean runs (their first
   batch, which also creates the tables' first files, left out of both sides).
4. After each run, Silver holds exactly the input's clean orders (by ``event_id``), and the dead letters and the
   quarantine exactly the hostile set's (dead letters by reason); else BenchError.

    python -m lakehouse.scripts.bench hostile --hostile-events 50000
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.scripts.bench_scoring import ScoringInput, clean_events, event_start
from lakehouse.scripts.errors import BenchError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.config.settings import Settings
    from lakehouse.config.specs import EventTypeSpec

EVENT_TYPE = "orders"
WARMUP_EVENTS = 20_000
INPUTS = ("clean", "hostile")


@dataclass(frozen=True)
class HostileInput:
    """One produced topic: the clean orders Silver must hold, and whether the hostile set is among them."""

    orders: ScoringInput
    hostile: bool


def _produce(settings: Settings, spec: EventTypeSpec, events: int, hostile: bool, seed: int) -> HostileInput:
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.generator import GeneratorOptions, generate
    from lakehouse.kafka.generator.hostile import hostile_documents
    from lakehouse.kafka.producer import EventProducer

    clean = clean_events(generate(spec, events, GeneratorOptions(seed=seed, start=event_start())))
    messages: list[tuple[bytes | None, bytes]] = [(m.key, m.value) for m in clean]
    if hostile:
        bad = hostile_documents(clean[0].event or {}, "order_id")
        step = len(messages) // (len(bad) + 1)
        for index, value in reversed(list(enumerate(bad, start=1))):
            messages.insert(index * step, (None, value))
    ensure_topics(settings, [spec])
    with EventProducer(settings) as producer:
        sent = producer.send_raw(spec.topic, messages)
    if sent != len(messages):
        raise BenchError(f"{sent} of {len(messages)} messages were delivered to topic {spec.topic}")
    ids = [str((m.event or {})["event_id"]) for m in clean]
    return HostileInput(ScoringInput(spec.topic, spec, ids, 0, 0), hostile)


def _bad_coordinates(spark: SparkSession, settings: Settings, topic: str) -> tuple[dict[str, int], int, list]:
    """Dead letters by reason, the quarantined count, and every (partition, offset) of either."""
    from lakehouse.spark.jobs.stream import DEAD_LETTER_TABLE, QUARANTINE_TABLE

    letters = spark.read.format("delta").load(settings.storage.table_path("bronze", DEAD_LETTER_TABLE))
    dead = letters.where(letters.topic == topic).select("partition", "offset", "error_class").collect()
    quarantine = spark.read.format("delta").load(settings.storage.table_path("silver", QUARANTINE_TABLE))
    kept = quarantine.where(quarantine._kafka_topic == topic).select("_kafka_partition", "_kafka_offset").collect()
    reasons: dict[str, int] = {}
    for row in dead:
        reasons[row["error_class"]] = reasons.get(row["error_class"], 0) + 1
    coordinates = [(r["partition"], r["offset"]) for r in dead] + [tuple(r) for r in kept]
    return reasons, len(kept), coordinates


def _holds(progress: Any, topic: str, coordinates: list) -> bool:
    """Whether a batch's offset range holds any of the (partition, offset) ``coordinates``."""
    source = progress.sources[0]
    # the first batch's start offset is "null": from the topic's start
    start = (json.loads(source.startOffset or "null") or {}).get(topic, {})
    end = (json.loads(source.endOffset or "null") or {}).get(topic, {})
    return any(int(start.get(str(p), 0)) <= o < int(end.get(str(p), 0)) for p, o in coordinates)


def _check_silver(spark: SparkSession, settings: Settings, source: HostileInput) -> None:
    """Silver holds each of the input's clean orders once and nothing else; else BenchError."""
    silver = spark.read.format("delta").load(settings.storage.table_path("silver", source.orders.spec.tables.silver))
    ids = silver.select("event_id")
    expected = spark.createDataFrame([(i,) for i in source.orders.event_ids], "event_id string")
    found = {
        "rows": ids.count(),
        "missing": expected.join(ids, "event_id", "left_anti").count(),
        "unexpected": ids.join(expected, "event_id", "left_anti").count(),
    }
    if found != {"rows": source.orders.events, "missing": 0, "unexpected": 0}:
        topic = source.orders.spec.topic
        raise BenchError(f"Silver after a run over {topic}: {found}, expected {source.orders.events} rows")


def stream_run(spark: SparkSession, source: HostileInput, max_records: int, work: Path) -> dict[str, Any]:
    """One available-now run of the stream over the whole topic on a fresh lake; its batches, time and checks."""
    from lakehouse.kafka.generator.hostile import HOSTILE_DEAD_LETTERS, HOSTILE_QUARANTINED
    from lakehouse.scripts.bench_env import ROOT, use
    from lakehouse.spark.io import reference
    from lakehouse.spark.jobs.stream import start

    folder = work / f"run-{uuid.uuid4().hex[:8]}"
    settings = use(ROOT / "config", folder / "lake", folder / "checkpoints")
    spec = source.orders.spec
    reference.refresh(spark, settings, [j.reference for j in spec.enrich])
    query = start(spark, settings, spec, available_now=True, max_records=max_records)
    started = time.perf_counter()
    query.awaitTermination()
    seconds = time.perf_counter() - started
    _check_silver(spark, settings, source)
    reasons, quarantined, coordinates = _bad_coordinates(spark, settings, spec.topic)
    wanted = (HOSTILE_DEAD_LETTERS, HOSTILE_QUARANTINED) if source.hostile else ({}, 0)
    if (reasons, quarantined) != wanted:
        raise BenchError(f"{spec.topic}: dead letters {reasons} and {quarantined} quarantined, expected {wanted}")
    batches = [
        {
            "batch": p.batchId,
            "rows": p.numInputRows,
            "ms": p.durationMs.get("triggerExecution", 0),
            "hostile": _holds(p, spec.topic, coordinates),
        }
        for p in query.recentProgress
        if p.numInputRows
    ]
    shutil.rmtree(folder, ignore_errors=True)
    kind = "hostile" if source.hostile else "clean"
    print(f"  {kind}: {seconds:.1f} s, {len(batches)} batches", flush=True)
    return {"input": kind, "seconds": round(seconds, 2), "batches": batches}


def run_order(pairs: int) -> list[str]:
    """The measured runs' inputs in ABBA order: clean, hostile, hostile, clean, clean, hostile, ..."""
    return [kind for pair in range(pairs) for kind in (INPUTS if pair % 2 == 0 else INPUTS[::-1])]


def _median(values: list[int]) -> float:
    return float(statistics.median(values)) if values else 0.0


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The clean runs' slowest batch (the normal time) and the slowest batch holding hostile input, the first
    batch of every run left out."""
    measured = [(r["input"], b) for r in runs for b in r["batches"] if b["batch"] > 0]
    clean = [b["ms"] for kind, b in measured if kind == "clean"]
    hostile = [b["ms"] for kind, b in measured if kind == "hostile" and b["hostile"]]
    other = [b["ms"] for kind, b in measured if kind == "hostile" and not b["hostile"]]
    normal, worst = max(clean, default=0), max(hostile, default=0)
    median_clean, median_hostile = _median(clean), _median(hostile)
    return {
        "median_clean_batch_ms": median_clean,
        "median_hostile_batch_ms": median_hostile,
        "median_ratio": round(median_hostile / median_clean, 3) if median_clean else None,
        "normal_batch_ms": normal,
        "slowest_hostile_batch_ms": worst,
        "slowest_other_batch_ms": max(other, default=0),
        "hostile_batches": len(hostile),
        "ratio": round(worst / normal, 3) if normal else None,
        "within_normal": bool(hostile) and worst <= normal,
    }


def bench_hostile(settings: Settings, events: int, pairs: int, max_records: int) -> dict[str, Any]:
    """Produce the inputs once and time the stream over each, alternated."""
    from lakehouse.config.specs import load_event_types
    from lakehouse.kafka.admin import admin_client
    from lakehouse.scripts.bench_env import bench_home
    from lakehouse.spark.session import get_spark

    tag = uuid.uuid4().hex[:6]
    work = bench_home() / f"hostile-{tag}"
    spec = load_event_types()[EVENT_TYPE]

    def topic(kind: str) -> EventTypeSpec:
        return spec.model_copy(update={"topic": f"{spec.topic}_hostile_{kind}_{tag}"})

    warmup = _produce(settings, topic("warmup"), WARMUP_EVENTS, False, 3)
    inputs = {kind: _produce(settings, topic(kind), events, kind == "hostile", 1) for kind in INPUTS}
    spark = get_spark("bench", own_driver=True)
    try:
        stream_run(spark, warmup, min(max_records, WARMUP_EVENTS // 2), work)
        runs = [stream_run(spark, inputs[kind], max_records, work) for kind in run_order(pairs)]
    finally:
        topics = [warmup.orders.spec.topic, *(i.orders.spec.topic for i in inputs.values())]
        for future in admin_client(settings).delete_topics(topics, operation_timeout=30).values():
            future.exception()  # a topic left behind is harmless: the next run's have a tag of their own
    shutil.rmtree(work, ignore_errors=True)
    return {"events": events, "max_records": max_records, "pairs": pairs, "runs": runs, **summary(runs)}


def hostile_section(entry: dict[str, Any] | None, run_line: Callable[[dict[str, Any]], str]) -> list[str]:
    """The section of docs/benchmarks.md (nothing before a first run)."""
    if entry is None:
        return []
    result = entry["result"]
    verdict = "within" if result["within_normal"] else "**over**"
    lines = [
        "",
        "## Hostile input: the stream's batch time with and without it",
        "",
        run_line(entry["run"]),
        "",
        f"{result['events']:,} clean orders per input, {result['max_records']:,} records per batch; the hostile "
        "input has the 8 hostile messages (a 10 MB message, a million-element array, a NUL, an unpaired surrogate, "
        "3 hostile tenant ids, a 100-level nested document) among them. The slowest batch holding hostile input "
        f"took **{result['slowest_hostile_batch_ms']:,} ms**, {verdict} the normal time (the clean runs' slowest "
        f"batch) of {result['normal_batch_ms']:,} ms (ratio {result['ratio']}); the hostile runs' other batches "
        f"took up to {result['slowest_other_batch_ms']:,} ms. Medians: {result['median_hostile_batch_ms']:,.0f} ms for "
        f"a batch holding hostile input, {result['median_clean_batch_ms']:,.0f} ms for a clean run's batch (ratio "
        f"{result['median_ratio']}).",
        "",
        "| run | input | seconds | batches | batch times (ms; * = holds hostile input) |",
        "|---|---|---|---|---|",
    ]
    for number, run in enumerate(result["runs"], start=1):
        times = ", ".join(f"{b['ms']:,}{'*' if b['hostile'] else ''}" for b in run["batches"])
        lines.append(f"| {number} | {run['input']} | {run['seconds']} | {len(run['batches'])} | {times} |")
    lines += [
        "",
        "How it is measured: `scripts/bench_hostile.py` (an unmeasured warm-up run, then clean and hostile runs in "
        "ABBA order, each the orders query in available-now mode on a fresh lake; every batch's trigger time from the "
        "query's progress; the first batch of each run left out of the comparison; after each run Silver, the dead "
        "letters by reason and the quarantine are checked against what was produced).",
    ]
    return lines
