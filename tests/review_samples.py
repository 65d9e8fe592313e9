"""Generated reviews for the sentiment model's tests, written to a private lake's Silver table as the stream lands
them, and the training set they must give (labels and time-based split), computed here from the events.

20,000 customer events of seed 5 over 2026-11-20..26 hold 1,434 reviews, 1,218 of them with a text; a few hundred
other events go with them, for the training set to leave out."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

from lakehouse.config.settings import Settings
from lakehouse.config.specs import event_type
from lakehouse.kafka.generator import GeneratorOptions, generate
from lakehouse.spark.marts import silver_schema

EVENTS = 20_000
OTHER_EVENTS = 300
OPTIONS = GeneratorOptions(seed=5, days=7)
LABELS = {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}
CLASSES = ["negative", "neutral", "positive"]


def review_events() -> list[dict[str, Any]]:
    """The generated reviews, then the first ``OTHER_EVENTS`` other customer events."""
    generated = [m.event for m in generate("customer_events", EVENTS, OPTIONS) if m.event is not None]
    others = [e for e in generated if e["event_type"] != "review"][:OTHER_EVENTS]
    return [e for e in generated if e["event_type"] == "review"] + others


def write_silver(spark: Any, env: Settings, events: list[dict[str, Any]]) -> None:
    """Append the events to the Silver table of ``env``'s lake (the contract's columns, event date, ingest time),
    unscored (null sentiment columns)."""
    columns = [field.name for field in event_type("customer_events").fields]
    rows = []
    for event in events:
        when = event_time(event)
        contract = (when if c == "event_timestamp" else event.get(c) for c in columns)
        rows.append((*contract, when.date(), when, None, None, None))
    frame = spark.createDataFrame(rows, silver_schema("customer_events"))
    frame.write.format("delta").mode("append").partitionBy("tenant_id", "event_date").save(
        env.storage.table_path("silver", "customer_events")
    )


def event_time(event: dict[str, Any]) -> datetime:
    """The event's timestamp (ISO 8601 with a Z), as an aware UTC datetime."""
    return datetime.fromisoformat(str(event["event_timestamp"]).replace("Z", "+00:00")).astimezone(UTC)


def expected_split(
    events: list[dict[str, Any]], end: date, holdout_fraction: float = 0.2
) -> dict[str, tuple[str, str]]:
    """event_id -> (label, split) of the training set: the reviews with a rating and a non-blank text of the days
    before ``end``, ordered by time then id, the newest ``floor(n * holdout_fraction)`` held out."""
    reviews = sorted(
        (
            e
            for e in events
            if e["event_type"] == "review"
            and e["rating"] is not None
            and (e["review_text"] or "").strip()
            and event_time(e).date() < end
        ),
        key=lambda e: (event_time(e), e["event_id"]),
    )
    held_out = math.floor(len(reviews) * holdout_fraction)
    return {
        e["event_id"]: (LABELS[e["rating"]], "holdout" if n >= len(reviews) - held_out else "train")
        for n, e in enumerate(reviews)
    }
