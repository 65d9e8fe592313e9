"""The Silver stream of ``customer_events`` with sentiment scoring on against off, for ``make bench`` (issue 17:
the stream scoring reviews keeps at least 80% of its throughput without scoring).

1. A champion: the training job's pipeline fitted on generated reviews, registered and promoted on the bench
   stack's MLflow server (``bench_serving_model.register_champion``).
2. Two inputs, each produced once to a topic of its own: ``mixed``, the generator's clean ``customer_events``
   (page views, carts and reviews in its proportions), and ``reviews only``, the worst case, generated reviews that
   carry a text.
3. Per input: one unmeasured warm-up run of each side over the same input (a smaller warm-up left the driver
   getting faster for the first measured runs of a big input), then the measured runs in the order
   off, on, on, off, off, on, ... (``side_order``). Each run is
   ``lakehouse.spark.jobs.stream.start(..., available_now=True)`` in this process's Spark session on a fresh lake
   and checkpoint folder, so it reads the whole topic from its start; off is the same event type with
   ``sentiment: null``. Timed: from the query's start to its termination (every micro-batch committed); creating
   the fresh lake's empty tables before it is not. After each run Silver must hold exactly the input's events (by
   ``event_id``), on runs must have the champion's version on every review with a text, and off runs none; a run
   that breaks either fails the section.

    python -m lakehouse.scripts.bench scoring --scoring-events 100000
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.scripts.errors import BenchError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakehouse.config.settings import Settings
    from lakehouse.config.specs import EventTypeSpec
    from lakehouse.kafka.generator import GeneratedMessage

EVENT_TYPE = "customer_events"
TARGET_RATIO = 0.8  # issue 17: events/s with scoring on at least 80% of off
SIDES = ("off", "on")
# generated events per review with a text wanted, at most (the generator's share is about 6%)
_REVIEW_SEARCH_FACTOR = 40


@dataclass(frozen=True)
class ScoringInput:
    """Events produced to one topic, and what Silver must hold after a run over it."""

    name: str
    spec: EventTypeSpec
    event_ids: list[str]
    reviews: int
    reviews_with_text: int

    @property
    def events(self) -> int:
        """The events in the topic."""
        return len(self.event_ids)


def is_review_with_text(message: GeneratedMessage) -> bool:
    """Whether a generated message is a review the model scores: a review event with a non-empty text."""
    event = message.event or {}
    return event.get("event_type") == "review" and bool(event.get("review_text"))


def clean_events(messages: Iterable[GeneratedMessage]) -> list[GeneratedMessage]:
    """The messages the generator did not make faulty."""
    return [m for m in messages if m.fault is None]


def only_reviews_with_text(messages: Iterable[GeneratedMessage], count: int) -> list[GeneratedMessage]:
    """The first ``count`` clean reviews with a text among ``messages``; BenchError when there are fewer."""
    found = list(itertools.islice((m for m in messages if m.fault is None and is_review_with_text(m)), count))
    if len(found) < count:
        raise BenchError(f"the generated events held {len(found)} reviews with a text, {count} were wanted")
    return found


def median_rate(runs: list[dict[str, Any]], side: str) -> float:
    """The median events/s of the runs of one side (``off`` or ``on``)."""
    rates = [run["events_per_s"] for run in runs if run["side"] == side]
    if not rates:
        raise BenchError(f"no measured run with scoring {side}")
    return statistics.median(rates)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median events/s of each side over the measured runs, on over off, and whether that meets TARGET_RATIO."""
    off, on = median_rate(runs, "off"), median_rate(runs, "on")
    ratio = on / off
    return {"off_events_per_s": off, "on_events_per_s": on, "ratio": ratio, "target_met": ratio >= TARGET_RATIO}


def side_order(pairs: int) -> list[str]:
    """The measured runs' sides in run order: off, on, on, off, off, on, ... (each pair reverses the last, so a
    driver that keeps getting faster from run to run, as a JVM warming up does, favours neither side)."""
    return [side for n in range(pairs) for side in (SIDES if n % 2 == 0 else SIDES[::-1])]


def event_start() -> datetime:
    """Event times over the last day: none in the future (rule ``not_in_future``), none older than the dedup
    watermark (no late events)."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


def _generated(spec: EventTypeSpec, count: int, seed: int) -> Iterator[GeneratedMessage]:
    from lakehouse.kafka.generator import GeneratorOptions, generate

    return generate(spec, count, GeneratorOptions(seed=seed, start=event_start()))


def produce_input(settings: Settings, name: str, spec: EventTypeSpec, messages: list[GeneratedMessage]) -> ScoringInput:
    """Create ``spec``'s topic and send ``messages`` to it, once."""
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer

    ensure_topics(settings, [spec])
    with EventProducer(settings) as producer:
        sent = producer.send_events(spec, messages)
    if sent != len(messages):
        raise BenchError(f"{sent} of {len(messages)} events were delivered to topic {spec.topic}")
    events = [m.event or {} for m in messages]
    return ScoringInput(
        name=name,
        spec=spec,
        event_ids=[str(e["event_id"]) for e in events],
        reviews=sum(e.get("event_type") == "review" for e in events),
        reviews_with_text=sum(map(is_review_with_text, messages)),
    )


def produce_inputs(settings: Settings, events: int, reviews: int, tag: str) -> list[ScoringInput]:
    """The measured inputs (mixed events, reviews only), each in a topic of its own."""
    from lakehouse.config.specs import load_event_types

    spec = load_event_types()[EVENT_TYPE]

    def topic(kind: str) -> EventTypeSpec:
        return spec.model_copy(update={"topic": f"{spec.topic}_scoring_{kind}_{tag}"})

    mixed = produce_input(settings, "mixed", topic("mixed"), clean_events(_generated(spec, events, 1)))
    worst = only_reviews_with_text(_generated(spec, reviews * _REVIEW_SEARCH_FACTOR, 2), reviews)
    return [mixed, produce_input(settings, "reviews only", topic("reviews"), worst)]


def check_silver(
    spark: SparkSession, settings: Settings, scoring: ScoringInput, expected_ids: DataFrame, version: str | None
) -> dict[str, int]:
    """What Silver holds after a run over ``scoring``: rows, expected events missing, rows not expected, reviews
    with a text that ``version`` did not score (with scoring on) and rows with any model version (with it off);
    BenchError unless all but the rows are 0."""
    from pyspark.sql import functions as F

    silver = spark.read.format("delta").load(settings.storage.table_path("silver", scoring.spec.tables.silver))
    # an event type without ``sentiment`` has no score columns in Silver at all
    model_version = F.col("model_version") if "model_version" in silver.columns else F.lit(None).cast("string")
    with_text = (F.col("event_type") == "review") & (F.length(F.col("review_text")) > 0)
    row = silver.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count(F.when(with_text & ~model_version.eqNullSafe(F.lit(version)), 1)).alias("unscored"),
        F.count(model_version).alias("scored"),
    ).first()
    assert row is not None
    ids = silver.select("event_id")
    repeated = int(row["rows"]) - ids.distinct().count()
    checked = {
        "rows": int(row["rows"]),
        "missing": expected_ids.join(ids, "event_id", "left_anti").count(),
        "unexpected": ids.join(expected_ids, "event_id", "left_anti").count() + repeated,
        "unscored": int(row["unscored"]) if version is not None else 0,
        "scored_while_off": int(row["scored"]) if version is None else 0,
    }
    if checked["rows"] != scoring.events or any(n for key, n in checked.items() if key != "rows"):
        raise BenchError(
            f"Silver after a run over {scoring.spec.topic} with scoring {'on' if version else 'off'}: {checked}, "
            f"expected {scoring.events} rows; the lake is kept in {settings.storage.lake_root}"
        )
    return checked


def stream_run(
    spark: SparkSession, scoring: ScoringInput, side: str, version: str, work: Path, expected_ids: DataFrame
) -> dict[str, Any]:
    """One available-now run of the stream over the whole topic on a fresh lake; its time and checks."""
    from lakehouse.scripts.bench_env import ROOT, use
    from lakehouse.spark.io import reference
    from lakehouse.spark.jobs.stream import start

    folder = work / f"run-{uuid.uuid4().hex[:8]}"
    settings = use(ROOT / "config", folder / "lake", folder / "checkpoints")
    spec = scoring.spec if side == "on" else scoring.spec.model_copy(update={"sentiment": None})
    reference.refresh(spark, settings, [j.reference for j in spec.enrich])
    called = time.perf_counter()
    query = start(spark, settings, spec, available_now=True)  # creates the empty Bronze and quarantine tables first
    started = time.perf_counter()
    query.awaitTermination()
    seconds = time.perf_counter() - started
    checks = check_silver(spark, settings, scoring, expected_ids, version if side == "on" else None)
    shutil.rmtree(folder, ignore_errors=True)
    run = {"side": side, "seconds": round(seconds, 3), "events_per_s": round(scoring.events / seconds, 1)}
    run |= {"table_setup_s": round(started - called, 3), **checks}
    print(f"  {scoring.name}, scoring {side}: {seconds:.1f} s, {run['events_per_s']:,.0f} events/s", flush=True)
    return run


def bench_scoring(settings: Settings, events: int, reviews: int, pairs: int) -> dict[str, Any]:
    """Register a champion, produce the inputs once, and time the stream over each with scoring off and on."""
    from confluent_kafka import KafkaException

    from lakehouse.kafka.admin import admin_client
    from lakehouse.scripts.bench_env import bench_home
    from lakehouse.scripts.bench_serving_model import TRAIN_TEXTS, register_champion
    from lakehouse.spark.session import get_spark

    tag = uuid.uuid4().hex[:6]
    work = bench_home() / f"scoring-{tag}"
    version, _ = register_champion(settings)
    print(f"  champion: version {version} of {settings.mlflow.model_name}", flush=True)
    inputs = produce_inputs(settings, events, reviews, tag)
    spark = get_spark("bench", own_driver=True)
    measured = []
    try:
        for scoring in inputs:
            expected = spark.createDataFrame([(i,) for i in scoring.event_ids], "event_id string").cache()
            runs = {
                kind: [stream_run(spark, scoring, side, version, work, expected) for side in sides]
                for kind, sides in (("warmup", list(SIDES)), ("measured", side_order(pairs)))
            }
            expected.unpersist()
            measured.append(
                {
                    "input": scoring.name,
                    "topic": scoring.spec.topic,
                    "events": scoring.events,
                    "reviews": scoring.reviews,
                    "reviews_with_text": scoring.reviews_with_text,
                    "runs": runs["measured"],
                    "warmup_runs": runs["warmup"],
                    **summary(runs["measured"]),
                }
            )
    finally:
        admin = admin_client(settings)
        topics = [i.spec.topic for i in inputs]
        for topic, future in admin.delete_topics(topics, operation_timeout=30).items():
            try:
                future.result()
            except KafkaException as exc:
                print(f"  topic {topic} was not deleted: {exc}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "model": settings.mlflow.model_name,
        "version": version,
        "train_texts": TRAIN_TEXTS,
        "pairs": pairs,
        "target_ratio": TARGET_RATIO,
        "inputs": measured,
    }


def scoring_section(entry: dict[str, Any] | None, run_line: Callable[[dict[str, Any]], str]) -> list[str]:
    """The section of docs/benchmarks.md (nothing before a first run)."""
    if entry is None:
        return []
    result = entry["result"]
    # runs before 2026-12-06 warmed up on a small topic of their own
    warmed_on = (
        f"one unmeasured run of each side over {result['warmup_events']:,} mixed events of a warm-up topic"
        if "warmup_events" in result
        else "one unmeasured run of each side over the same input"
    )
    lines = [
        "",
        "## Sentiment scoring in the stream: customer_events with scoring on against off",
        "",
        run_line(entry["run"]),
        "",
        "| input | events | reviews (with a text) | events/s off | events/s on | on / off | target >= "
        f"{result['target_ratio']:.0%} | runs in order (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for measured in result["inputs"]:
        text_share = measured["reviews_with_text"] / measured["events"]
        runs = ", ".join(f"{run['side']} {run['seconds']:.1f}" for run in measured["runs"])
        lines.append(
            f"| {measured['input']} | {measured['events']:,} | {measured['reviews']:,} "
            f"({measured['reviews_with_text']:,}, {text_share:.1%} of the events) | "
            f"{measured['off_events_per_s']:,.0f} | {measured['on_events_per_s']:,.0f} | "
            f"**{measured['ratio']:.0%}** | {'met' if measured['target_met'] else 'not met'} | {runs} |"
        )
    lines += [
        "",
        "### How it is measured",
        "",
        f"* **Model**: version {result['version']} of `{result['model']}`, the training job's pipeline (TF-IDF + "
        f"logistic regression) fitted on {result['train_texts']:,} generated reviews, registered and promoted to "
        "champion on the bench stack's MLflow server.",
        "* **Inputs**, each produced once to a topic of its own: *mixed*, the generator's clean `customer_events` "
        "(page views, carts and reviews in its proportions); *reviews only*, the worst case, generated reviews "
        "that carry a text (the generator's events filtered).",
        "* **Runs**: `lakehouse.spark.jobs.stream.start(..., available_now=True)` for `customer_events` in the "
        "benchmark's own `local[2]` driver, on a fresh lake and checkpoint folder each time, so every run reads the "
        "whole topic (batches of up to 200,000 messages). Off is the same event type with `sentiment: null`. Per "
        f"input, {warmed_on}, "
        f"then {result['pairs']} pairs of measured runs, each pair in the reverse order of the last (off, on, on, "
        "off, ...), so that a driver still getting faster favours neither side. Timed: from the query's start to its "
        "termination, every micro-batch committed (creating the fresh lake's empty tables before it is not timed, "
        "as production's tables exist); events/s is the input's events over that time, and each side's "
        "figure the median of its measured runs.",
        "* **Checked after every run** (a failure fails the section): Silver holds exactly the input's events by "
        "`event_id` (none missing, none extra or twice); with scoring on, every review with a text carries the "
        "champion's `model_version`; with it off, no row carries one (Silver then has no score columns at all, as in "
        "production for an event type without `sentiment`).",
        "",
        "Reproduce: `python -m lakehouse.scripts.bench scoring` (this section alone; `--scoring-events`, "
        "`--scoring-reviews` and `--scoring-pairs` set the volumes and runs).",
        "",
    ]
    return lines
