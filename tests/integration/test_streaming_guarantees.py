"""Issue-3 guarantees on the real stack (Kafka broker, spark-submit, Delta):

* onboarding a new event type is configuration only (a YAML entry and a JSON Schema);
* every message is accounted for, per event type: Bronze = produced offsets, and
  Silver + quarantine + dead letters + removed duplicates = produced messages;
* exactly-once across SIGKILLs of the streaming process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lakehouse.config.settings import Settings
from lakehouse.kafka.generator import INVALID_FAULTS, MALFORMED_FAULTS, GeneratedMessage, GeneratorOptions, generate
from tests.shipments import onboard_shipments

pytestmark = pytest.mark.integration
DEAD_LETTER_FAULTS = set(MALFORMED_FAULTS)
QUARANTINE_FAULTS = set(INVALID_FAULTS)


def _count(spark: Any, path: str, where: str = "true") -> int:
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return 0
    return int(spark.read.format("delta").load(path).where(where).count())


def _audit(settings: Settings, spark: Any, query: str, aggregates: str) -> list[tuple[Any, ...]]:
    """Aggregates over the audit rows of one query of this test's checkpoint (lakehouse_meta.stream_batches)."""
    from lakehouse.spark.io.delta import checkpoint_app_id

    app_id = checkpoint_app_id(spark, settings.storage.checkpoint_path(query))
    with psycopg.connect(settings.postgres_dsn()) as conn:
        return conn.execute(
            f"SELECT {aggregates} FROM lakehouse_meta.stream_batches WHERE query = %s AND app_id = %s", (query, app_id)
        ).fetchall()


def _effective_faults(messages: list[GeneratedMessage]) -> list[str | None]:
    """A duplicate is a re-send of an earlier message, so it shares that message's fate."""
    fault_of = {m.value: m.fault for m in messages if m.fault != "duplicate"}
    return [fault_of.get(m.value) if m.fault == "duplicate" else m.fault for m in messages]


def test_new_event_type_by_configuration_and_every_message_accounted_for(
    kafka_stack: Settings, postgres_stack: Settings, isolated_lake: Settings, unique: str, spark: Any
) -> None:
    from lakehouse.config.settings import config_dir
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.spark.submit import run_spark_job

    config = config_dir()
    onboard_shipments(config, unique)
    ensure_topics(isolated_lake)

    options = GeneratorOptions(
        tenants=3, seed=11, duplicate_fraction=0.05, malformed_fraction=0.03, invalid_fraction=0.04, v2_fraction=0.5
    )
    produced: dict[str, list[GeneratedMessage]] = {
        name: [m for m in generate(name, 400, options) if m.fault != "oversized"]
        for name in ("orders", "customer_events", "device_metrics")
    }
    shipments = [
        json.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "event_type": "SHIPPED",
                "schema_version": 1,
                "tenant_id": "t1",
                "event_timestamp": "2026-11-20T08:00:00Z",
                "shipment_id": f"S{i}",
                "weight_kg": 1.5 + i,
            }
        ).encode()
        for i in range(20)
    ]
    shipments += [
        shipments[0],
        b"{not json",
        json.dumps(
            {
                "event_id": "x",
                "event_type": "SHIPPED",
                "schema_version": 1,
                "tenant_id": "t1",
                "event_timestamp": "2026-11-20T08:00:00Z",
                "shipment_id": "S-bad",
                "weight_kg": 0,
            }
        ).encode(),
    ]
    with EventProducer(isolated_lake) as producer:
        for name, messages in produced.items():
            producer.send_events(name, messages)
        producer.send_raw(f"shipments_{unique}", [(None, value) for value in shipments])

    run_spark_job(isolated_lake, "lakehouse.spark.jobs.stream", ["--available-now"])

    lake = isolated_lake.storage
    for name, messages in produced.items():
        faults = _effective_faults(messages)
        clean = [m for m, f in zip(messages, faults, strict=True) if f is None]
        distinct_clean = {m.event["event_id"] for m in clean if m.event}
        expected = {
            "bronze": len(messages),
            "dead_letters": sum(f in DEAD_LETTER_FAULTS for f in faults),
            "quarantine": sum(f in QUARANTINE_FAULTS for f in faults),
            "silver": len(distinct_clean),
            "duplicates_removed": len(clean) - len(distinct_clean),
        }
        bronze_path = lake.table_path("bronze", name)
        offsets = (
            spark.read.format("delta")
            .load(bronze_path)
            .groupBy("partition")
            .agg({"offset": "max", "*": "count"})
            .collect()
        )
        got = {
            "bronze": _count(spark, bronze_path),
            "dead_letters": _count(spark, lake.table_path("bronze", "_dead_letters"), f"topic = '{name}_{unique}'"),
            "quarantine": _count(spark, lake.table_path("silver", "_quarantine"), f"source = '{name}'"),
            "silver": _count(spark, lake.table_path("silver", name)),
        }
        got["duplicates_removed"] = got["bronze"] - got["dead_letters"] - got["quarantine"] - got["silver"]
        assert got == expected, name
        # no gap and no duplicate offset per partition: offsets 0..n-1 exactly once
        for row in offsets:
            assert row["max(offset)"] + 1 == row["count(1)"], f"{name} partition {row['partition']}"
        assert (
            _count(spark, bronze_path)
            == spark.read.format("delta").load(bronze_path).select("partition", "offset").distinct().count()
        )

    assert _count(spark, lake.table_path("silver", "shipments")) == 20
    quarantined = (
        spark.read.format("delta")
        .load(lake.table_path("silver", "_quarantine"))
        .where("source = 'shipments'")
        .collect()
    )
    assert [r["violations"] for r in quarantined] == [["dq:weight_positive"]]
    assert _count(spark, lake.table_path("bronze", "_dead_letters"), f"topic = 'shipments_{unique}'") == 1
    totals = _audit(
        isolated_lake, spark, "stream_shipments", "sum(input_rows), sum(dead_letter_rows), sum(deduplicated_rows)"
    )
    assert totals == [(23, 1, 1)]

    # each Silver commit names its batch (the time its rows became visible is the commit's timestamp)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{lake.table_path('silver', 'orders')}`")
    tags = [json.loads(r[0]) for r in history.select("userMetadata").collect() if r[0]]
    assert {(t["query"], t["batch_id"]) for t in tags} == {("stream_orders", 0)}

    # the batch rebuild from Bronze gives the rows the stream wrote (all but the processing stamps)
    def silver_rows(name: str) -> list[tuple[Any, ...]]:
        frame = spark.read.format("delta").load(lake.table_path("silver", name))
        return sorted(tuple(r) for r in frame.drop("_silver_batch", "_processed_at").collect())

    def quarantine_rows() -> list[tuple[Any, ...]]:
        frame = spark.read.format("delta").load(lake.table_path("silver", "_quarantine"))
        return sorted((tuple(r) for r in frame.collect()), key=repr)

    streamed = {name: silver_rows(name) for name in (*produced, "shipments")}
    streamed_quarantine = quarantine_rows()
    run_spark_job(isolated_lake, "lakehouse.spark.jobs.silver", [])
    for name, rows in streamed.items():
        assert silver_rows(name) == rows, name
    assert quarantine_rows() == streamed_quarantine
    batches = spark.read.format("delta").load(lake.table_path("silver", "orders")).select("_silver_batch").distinct()
    assert [r[0].split(":")[0] for r in batches.collect()] == ["rebuild"]


def test_exactly_once_across_sigkills(
    kafka_stack: Settings, postgres_stack: Settings, isolated_lake: Settings, unique: str, spark: Any, tmp_path: Path
) -> None:
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.spark.submit import submit_command, submit_env

    ensure_topics(isolated_lake)
    options = GeneratorOptions(tenants=3, seed=5, duplicate_fraction=0.1)
    messages = list(generate("orders", 4000, options))
    distinct_ids = {m.event["event_id"] for m in messages if m.event}

    def produce() -> None:
        with EventProducer(isolated_lake) as producer:
            producer.send_events("orders", messages, rate=100)

    producer_thread = threading.Thread(target=produce, daemon=True)
    producer_thread.start()

    argv = submit_command(
        isolated_lake,
        "lakehouse.spark.jobs.stream",
        ["--event-type=orders", "--trigger-seconds=1", "--max-records-per-batch=700"],
    )
    env = submit_env(isolated_lake)
    rng = random.Random(1234)
    kills = 0
    log = (tmp_path / "stream.log").open("ab")
    while kills < 3:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        time.sleep(rng.uniform(12, 25))
        assert proc.poll() is None, f"the streaming process died on its own; see {tmp_path / 'stream.log'}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    producer_thread.join(timeout=120)
    assert not producer_thread.is_alive()

    finish = subprocess.run(
        [*argv[:-3], "--event-type=orders", "--available-now"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        check=False,
    )
    assert finish.returncode == 0, f"see {tmp_path / 'stream.log'}"

    lake = isolated_lake.storage
    bronze = spark.read.format("delta").load(lake.table_path("bronze", "orders"))
    assert bronze.count() == len(messages)
    assert bronze.select("partition", "offset").distinct().count() == len(messages)
    silver = spark.read.format("delta").load(lake.table_path("silver", "orders"))
    ids = Counter(r["event_id"] for r in silver.select("event_id").collect())
    assert set(ids) == distinct_ids, "lost or invented events"
    assert max(ids.values()) == 1, "duplicated events in Silver"
    # every Silver row is counted once in the audit, however often its batch was replayed after a kill
    assert _audit(isolated_lake, spark, "stream_orders", "sum(output_rows)") == [(silver.count(),)]
