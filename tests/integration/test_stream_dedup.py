"""Bounded deduplication in the stream (issue 15): duplicates newer than the event type's ``dedup_watermark`` are
caught by the query's state, older ("late") events are checked against Silver on their own event dates, and a
restart between a first copy and its duplicate changes neither. Runs the real query (Kafka source, RocksDB state
store, Delta sinks) in this process, one available-now run per step, on one checkpoint."""

from __future__ import annotations

import copy
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pyspark.sql import functions as F

from lakehouse.config.settings import Settings
from lakehouse.kafka.generator import GeneratorOptions, generate

pytestmark = pytest.mark.integration


def _order(template: dict[str, Any], at: datetime) -> dict[str, Any]:
    event = copy.deepcopy(template)
    event["event_id"] = str(uuid.uuid4())
    event["event_timestamp"] = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return event


def _run(spark: Any, settings: Settings, max_records: int | None = None) -> None:
    from lakehouse.config.specs import load_event_types
    from lakehouse.spark.io import reference
    from lakehouse.spark.jobs import stream

    spec = load_event_types()["orders"]
    reference.refresh(spark, settings, [j.reference for j in spec.enrich])
    query = stream.start(spark, settings, spec, available_now=True, max_records=max_records)
    query.awaitTermination()
    assert query.exception() is None


def test_state_catches_recent_duplicates_and_silver_the_late_ones_across_a_restart(
    kafka_stack: Settings, isolated_serving: Settings, spark: Any
) -> None:
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.spark.errors import SparkJobError

    env = isolated_serving
    ensure_topics(env)
    template = next(m.event for m in generate("orders", 20, GeneratorOptions(seed=4)) if m.fault is None and m.event)
    now = datetime.now(UTC).replace(microsecond=0)
    recent = _order(template, now - timedelta(hours=1))
    old = _order(template, now - timedelta(days=5))
    never_seen_old = _order(template, now - timedelta(days=4))

    with EventProducer(env) as producer:
        producer.send_events("orders", [recent, old])
    _run(spark, env)  # the first copies; no watermark yet, so both go through the state

    with EventProducer(env) as producer:
        producer.send_events("orders", [recent, old, never_seen_old])
    _run(spark, env)  # a new query on the same checkpoint: its state and watermark come back from the checkpoint

    # one message per batch (one Kafka partition: the same order id), so the query's late-event index of Silver's
    # keys reads never_seen_old's date from Silver, then holds it and learns the key of another_old from its batch
    another_old = _order(template, datetime.combine((now - timedelta(days=4)).date(), time(12), UTC))
    with EventProducer(env) as producer:
        producer.send_events("orders", [never_seen_old, another_old, another_old])
    _run(spark, env, max_records=1)

    silver = spark.read.format("delta").load(env.storage.table_path("silver", "orders"))
    ids = Counter(r["event_id"] for r in silver.select("event_id").collect())
    assert ids == Counter({e["event_id"]: 1 for e in (recent, old, never_seen_old, another_old)})
    bronze = spark.read.format("delta").load(env.storage.table_path("bronze", "orders"))
    assert bronze.count() == 8

    # every row carries the time of the micro-batch that read it, as the checkpoint's offset log recorded it, and
    # Silver's rows were processed after it
    offsets = Path(env.storage.checkpoint_path("stream_orders")) / "offsets"
    batch_ms = {
        int(path.name): json.loads(path.read_text().splitlines()[1])["batchTimestampMs"]
        for path in offsets.iterdir()
        if path.name.isdigit()
    }
    stamped = silver.select(
        "_silver_batch", F.unix_millis("_ingested_at").alias("ingested"), F.unix_millis("_processed_at").alias("done")
    ).collect()
    assert all(r["ingested"] == batch_ms[int(r["_silver_batch"].rsplit(":", 1)[1])] for r in stamped)
    assert all(r["done"] >= r["ingested"] for r in stamped)
    bronze_ms = {r[0] for r in bronze.select(F.unix_millis("ingested_at")).distinct().collect()}
    assert len(bronze_ms) == 5 and bronze_ms <= set(batch_ms.values())  # the five batches that read messages
    # the dedup state is the timer dedup's (lakehouse.spark.timer_dedup), whose operator metadata is version 2
    versions = (offsets.parent / "state" / "0" / "_metadata" / "v2").iterdir()
    operators = {
        json.loads(v.read_text().splitlines()[1])["operatorInfo"]["operatorName"] for v in versions if v.name.isdigit()
    }
    assert operators == {"transformWithStateExec"}

    with psycopg.connect(env.postgres_dsn()) as conn:
        rows = conn.execute(
            "SELECT input_rows, output_rows, deduplicated_rows, late_rows, watermark, phase_ms"
            " FROM lakehouse_meta.stream_batches"
            " WHERE query = 'stream_orders' AND input_rows > 0 ORDER BY finished_at"
        ).fetchall()
    assert [r[:4] for r in rows] == [(2, 2, 0, 0), (3, 1, 2, 2), (1, 0, 1, 1), (1, 1, 0, 1), (1, 0, 1, 1)]
    # every batch with late events learnt the keys it added on the index's dates, as Silver's write observed them
    assert ["late_keys_new" in r[5] for r in rows] == [False, True, True, True, True]
    first_watermark, second_watermark = rows[0][4], rows[1][4]
    assert first_watermark is None
    # max event time seen (recent, an hour ago) minus the 2-day watermark of config/event_types/orders.yaml
    assert second_watermark == now - timedelta(hours=1) - timedelta(days=2)

    # a new checkpoint on a Silver table that has rows would not know their keys: refused with one clear line
    fresh = env.model_copy(
        update={"storage": env.storage.model_copy(update={"checkpoint_root": f"{env.storage.checkpoint_root}-new"})}
    )
    with pytest.raises(SparkJobError, match=r"checkpoint .* is new"):
        _run(spark, fresh)


def test_a_damaged_state_store_stops_the_stream_with_one_line_naming_the_recovery(
    kafka_stack: Settings, isolated_serving: Settings, spark: Any
) -> None:
    import shutil
    from pathlib import Path

    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.spark.errors import SparkJobError
    from lakehouse.spark.jobs import stream

    env = isolated_serving
    ensure_topics(env)
    messages = [m for m in generate("orders", 30, GeneratorOptions(seed=9)) if m.fault is None]
    with EventProducer(env) as producer:
        producer.send_events("orders", messages[:15])
    stream.main(["--event-type=orders", "--available-now"])
    state = Path(env.storage.checkpoint_path("stream_orders")) / "state"
    assert state.is_dir()
    shutil.rmtree(state)

    with EventProducer(env) as producer:
        producer.send_events("orders", messages[15:])
    with pytest.raises(SparkJobError, match=r"cannot be read .*see 'A damaged checkpoint' in docs/runbook.md") as error:
        stream.main(["--event-type=orders", "--available-now"])
    assert "\n" not in str(error.value)
    assert "MISSING_STATE_DIRECTORY" in str(error.value)
