"""Issue-3 guarantees on the real stack (Kafka broker, spark-submit, Delta):

* onboarding a new event type is configuration only (a YAML entry and a JSON Schema);
* every message is accounted for, per event type: Bronze = produced offsets, and
  Silver + quarantine + dead letters + removed duplicates = produced messages;
* a stop signal finishes the running batch and the next start resumes after it.

Exactly-once across ``kill -9``s of the streaming driver and of the broker is tests/integration/test_chaos.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lakehouse.config.settings import Settings
from lakehouse.kafka.generator import INVALID_FAULTS, MALFORMED_FAULTS, GeneratedMessage, GeneratorOptions, generate
from lakehouse.kafka.generator.hostile import HOSTILE_TENANTS, hostile_documents
from lakehouse.spark.io.delta import MARK_APP_ID
from tests.expected_orders import effective_faults
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


def _orders_landed_once(spark: Any, settings: Settings, produced: int, distinct_ids: set[str]) -> Any:
    """Assert every produced orders message is in Bronze once and every distinct event in Silver once; return
    the Silver table."""
    lake = settings.storage
    bronze = spark.read.format("delta").load(lake.table_path("bronze", "orders"))
    assert bronze.count() == produced
    assert bronze.select("partition", "offset").distinct().count() == produced
    silver = spark.read.format("delta").load(lake.table_path("silver", "orders"))
    ids = Counter(r["event_id"] for r in silver.select("event_id").collect())
    assert set(ids) == distinct_ids, "lost or invented events"
    assert max(ids.values()) == 1, "duplicated events in Silver"
    return silver


def _shipment(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "SHIPPED",
        "schema_version": 1,
        "tenant_id": "t1",
        "event_timestamp": "2026-11-20T08:00:00Z",
        "shipment_id": "S-hostile",
        "weight_kg": 1.0,
        **fields,
    }


def test_new_event_type_by_configuration_and_every_message_accounted_for(
    kafka_stack: Settings, postgres_stack: Settings, isolated_lake: Settings, unique: str, spark: Any
) -> None:
    from lakehouse.config.settings import config_dir
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.spark.jobs import silver as silver_job
    from lakehouse.spark.jobs import stream as stream_job

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
    shipments += hostile_documents(_shipment(), "shipment_id")  # dead-lettered or quarantined, each
    with EventProducer(isolated_lake) as producer:
        for name, messages in produced.items():
            producer.send_events(name, messages)
        assert producer.send_raw(f"shipments_{unique}", [(None, value) for value in shipments]) == len(shipments)

    # in this process's Spark session, as tests/integration/test_revenue_stream.py runs it: the spark-submit launch is
    # under test in the stop-signal test below, the golden-data suite and the chaos run
    stream_job.main(["--available-now"])

    lake = isolated_lake.storage
    for name, messages in produced.items():
        faults = effective_faults(messages)
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

    # the 20 good shipments
    assert _count(spark, lake.table_path("silver", "shipments")) == 20
    quarantined = (
        spark.read.format("delta")
        .load(lake.table_path("silver", "_quarantine"))
        .where("source = 'shipments'")
        .collect()
    )
    tenant_rule = ["contract.pattern:tenant_id"]
    assert sorted(r["violations"] for r in quarantined) == [tenant_rule] * len(HOSTILE_TENANTS) + [
        ["dq:weight_positive"]
    ]
    dead = (
        spark.read.format("delta")
        .load(lake.table_path("bronze", "_dead_letters"))
        .where(f"topic = 'shipments_{unique}'")
        .groupBy("error_class")
        .count()
        .collect()
    )
    assert dict(tuple(r) for r in dead) == {
        "NOT_A_JSON_OBJECT": 1,
        "OVERSIZED": 2,
        "FORBIDDEN_CHARACTER": 2,
        "TOO_DEEPLY_NESTED": 1,
    }
    totals = _audit(
        isolated_lake, spark, "stream_shipments", "sum(input_rows), sum(dead_letter_rows), sum(deduplicated_rows)"
    )
    assert totals == [(len(shipments), 6, 1)]

    # each batch says where its time went: the handler's steps, which together take no longer than the batch
    timings = _audit(isolated_lake, spark, "stream_orders", "input_rows, phase_ms, processing_ms")
    assert [rows for rows, _, _ in timings if rows] == [len(produced["orders"])]
    for rows, phases, processing_ms in timings:
        steps = ("offsets", "bronze", "counts", "silver_lookups", "silver", "dead_letters", "quarantine")
        assert set(phases) == set(steps if rows else ("offsets", "state"))  # a batch without messages runs the state
        serial = sum(phases[s] for s in phases if s not in ("dead_letters", "quarantine", "silver_lookups"))
        assert serial <= processing_ms + 5  # each step rounded to 1 ms

    # each Silver commit names its batch (the time its rows became visible is the commit's timestamp)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{lake.table_path('silver', 'orders')}`")
    tags = [json.loads(r[0]) for r in history.select("userMetadata").collect() if r[0]]
    assert {(t["query"], t["batch_id"]) for t in tags} == {("stream_orders", 0)}

    # Silver's files carry statistics of the event time only (what the revenue stream's audit reads)
    silver_orders = Path(lake.table_path("silver", "orders"))
    assert _statistics_columns(silver_orders) == {"event_timestamp"}
    # and a Delta checkpoint every 100 commits: the stream does not read Silver back in each batch
    assert _table_configuration(silver_orders)["delta.checkpointInterval"] == "100"

    # a batch's dead letters and quarantined events are few: one file per partition, not one per Kafka partition
    for table in ("bronze/_dead_letters", "silver/_quarantine"):
        files_per_partition = _streamed_files_per_partition(Path(lake.table_path(*table.split("/"))))
        assert files_per_partition and set(files_per_partition.values()) == {1}, (table, files_per_partition)

    # the batch rebuild from Bronze gives the rows the stream wrote (all but the processing stamps)
    def silver_rows(name: str) -> list[tuple[Any, ...]]:
        frame = spark.read.format("delta").load(lake.table_path("silver", name))
        return sorted(tuple(r) for r in frame.drop("_silver_batch", "_processed_at").collect())

    def quarantine_rows() -> list[tuple[Any, ...]]:
        frame = spark.read.format("delta").load(lake.table_path("silver", "_quarantine"))
        return sorted((tuple(r) for r in frame.collect()), key=repr)

    streamed = {name: silver_rows(name) for name in (*produced, "shipments")}
    streamed_quarantine = quarantine_rows()
    silver_job.main([])  # in this process's Spark session: the rows, not the launch, are under test here
    for name, rows in streamed.items():
        assert silver_rows(name) == rows, name
    assert quarantine_rows() == streamed_quarantine
    batches = spark.read.format("delta").load(lake.table_path("silver", "orders")).select("_silver_batch").distinct()
    assert [r[0].split(":")[0] for r in batches.collect()] == ["rebuild"]
    assert _statistics_columns(silver_orders) == {"event_timestamp"}
    # and a Delta checkpoint every 100 commits: the stream does not read Silver back in each batch
    assert _table_configuration(silver_orders)["delta.checkpointInterval"] == "100"


def _statistics_columns(table: Path) -> set[str]:
    """The columns whose minimum the data files added to the table record, read from its Delta commit files."""
    columns: set[str] = set()
    for commit in (table / "_delta_log").glob("*.json"):
        for line in commit.read_text().splitlines():
            add = json.loads(line).get("add") if line.strip() else None
            if add and add.get("stats"):
                columns |= set(json.loads(add["stats"]).get("minValues", {}))
    return columns


def _table_configuration(table: Path) -> dict[str, str]:
    """The table's properties as its latest metadata action in the Delta commit files sets them."""
    configuration: dict[str, str] = {}
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            metadata = json.loads(line).get("metaData") if line.strip() else None
            if metadata:
                configuration = metadata.get("configuration", {})
    return configuration


def _streamed_files_per_partition(table: Path) -> Counter[tuple[int, str]]:
    """Files added per (commit, partition) by the commits of streaming batches (those naming their batch), read
    from the table's Delta log."""
    added: Counter[tuple[int, str]] = Counter()
    for commit in sorted((table / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in commit.read_text().splitlines() if line.strip()]
        info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        if MARK_APP_ID not in (info.get("userMetadata") or ""):
            continue
        for action in actions:
            if "add" in action:
                added[(int(commit.stem), json.dumps(action["add"]["partitionValues"], sort_keys=True))] += 1
    return added


def _wait_for(log_path: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line of the log matching ``pattern`` once it is there (fails if the process ends first)."""
    import re

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log_path.read_text(errors="replace"))
        if found:
            return found.group(0)
        assert proc.poll() is None, f"the stream ended early; see {log_path}"
        time.sleep(0.5)
    raise AssertionError(f"no {pattern!r} in {log_path} within {timeout:.0f} s")


def test_stop_signals_finish_the_running_batch_and_the_next_start_resumes_after_it(
    kafka_stack: Settings, postgres_stack: Settings, isolated_lake: Settings, spark: Any, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) and SIGTERM to the ``lakehouse stream`` process stop the
    continuous stream between micro-batches: exit 0, no ERROR line, and the next start goes on with the next
    batch (nothing replayed); an available-now run then lands every message once."""
    import re
    import sys

    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.spark.jobs import stream as stream_job

    ensure_topics(isolated_lake)
    # 40 a second while both runs below go on, so that each sees rows arrive; no more once the second is stopped
    messages = list(generate("orders", 4000, GeneratorOptions(tenants=3, seed=11, duplicate_fraction=0.05)))
    sent: list[GeneratedMessage] = []
    delivered: list[int] = []
    enough = threading.Event()

    def paced() -> Iterator[GeneratedMessage]:
        for message in messages:
            if enough.is_set():
                return
            sent.append(message)
            yield message

    def produce() -> None:
        with EventProducer(isolated_lake) as producer:
            delivered.append(producer.send_events("orders", paced(), rate=40))

    producer_thread = threading.Thread(target=produce, daemon=True)
    producer_thread.start()
    cli = [str(Path(sys.executable).parent / "lakehouse"), "stream", "--event-type", "orders"]
    first_batches: list[int] = []
    next_batches: list[int] = []
    for stop_signal, whole_group in ((signal.SIGINT, True), (signal.SIGTERM, False)):
        log_path = tmp_path / f"stream-{stop_signal.name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cli, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                _wait_for(log_path, r"stream_orders batch \d+: [1-9]", proc, 240)
                if whole_group:
                    os.killpg(proc.pid, stop_signal)  # what a terminal does on Ctrl-C
                else:
                    proc.send_signal(stop_signal)  # what a service manager does
                assert proc.wait(timeout=240) == 0, f"see {log_path}"
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)  # the spark-submit JVM dies with the CLI
                    proc.wait()
        text = log_path.read_text(errors="replace")
        stopped = re.search(r"stream_orders stopped after (writing )?batch (\d+)(, which Spark left out)?", text)
        assert stopped, f"no stop line in {log_path}"
        assert " ERROR " not in text and "Traceback" not in text, f"see {log_path}"
        last_batch = int(stopped.group(2))
        assert f"stream_orders batch {last_batch}: " in text, "the last batch must have been written in full"
        # a batch written in full but left out of Spark's commit log is replayed, writing nothing twice
        next_batches.append(last_batch if stopped.group(3) else last_batch + 1)
        first_batches.append(int(re.findall(r"stream_orders batch (\d+): ", text)[0]))
    enough.set()
    producer_thread.join(timeout=120)
    assert not producer_thread.is_alive()
    assert delivered == [len(sent)]
    # the second run went on where the first said it would
    assert first_batches[1] == next_batches[0]

    # the catch-up on the same checkpoint, in this process's Spark session
    stream_job.main(["--event-type=orders", "--available-now"])
    _orders_landed_once(spark, isolated_lake, len(sent), {m.event["event_id"] for m in sent if m.event})
