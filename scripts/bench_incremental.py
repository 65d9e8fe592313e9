"""The incremental Gold benchmark: fct_orders_daily, one day (incremental) against 30 days (full rebuild), over a
Silver orders table of 30 days at each daily volume.

Silver is written the way production writes it where that fits the time budget: the events are produced to Kafka
(``lakehouse.scripts.bench_stream_load``'s producer, over the 30 days, with 1% late events whose event time lies
2 hours to 3 days before the rest, 2% duplicates and 1% malformed and 1% contract-invalid messages) and
``lakehouse stream --event-type orders --available-now`` writes Silver from them, so file layout and late-day
partitions are the stream's. Producing and streaming take time in proportion to the events: when the seconds per
event measured at a smaller volume put a volume's estimate over ``STREAM_BUDGET_S``, that volume's Silver is
bulk-written instead (``write_silver_orders``: one Spark write, exactly the daily volume on each day, no late
events), and the result says so (``silver``)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lakehouse.scripts.bench_env import bench_home, isolated_config, use
from lakehouse.scripts.bench_stream_load import HEADER, LoadPlan
from lakehouse.scripts.errors import BenchError

DAYS = 30
FIRST_DAY = date(2026, 10, 1)
STREAM_BUDGET_S = 600.0  # producing + streaming one volume's 30 days must fit in about 10 minutes
PRODUCERS = 2  # producer processes, each sending its share of the events over the 30 days
PRODUCER_RATE = 12_000.0  # events/s of one producer process (open loop: a process that falls behind fails the run)
LATE_FRACTION = 0.01
VALID_LABELS = ("clean", "late", "duplicate")


def write_silver_orders(spark: Any, path: str, events_per_day: int, first: date, days: int) -> None:
    """A Silver orders table with exactly ``events_per_day`` orders on each of ``days`` days from ``first``,
    spread over 5 tenants, 5,000 customers, 120 products, 4 regions and 3 channels (10% cancellations)."""
    from pyspark.sql import functions as F

    # id % days picks the day; k = id div days, independent of the day, picks everything else
    spark.range(events_per_day * days).selectExpr("id", f"id div {days} AS k").selectExpr(
        "uuid() AS event_id",
        "CASE WHEN k % 10 = 0 THEN 'ORDER_CANCELLED' ELSE 'ORDER_PLACED' END AS event_type",
        "CAST(2 AS bigint) AS schema_version",
        "concat('tenant_0', cast(k % 5 + 1 AS string)) AS tenant_id",
        f"timestamp'{first.isoformat()} 00:00:00' + make_interval(0, 0, 0, cast(id % {days} AS int), 0, 0, "
        "cast(k % 86400 AS decimal(18,6))) AS event_timestamp",
        "concat('O', cast(id AS string)) AS order_id",
        "concat('C', cast(k % 5000 AS string)) AS customer_id",
        "concat('P', lpad(cast(k % 120 + 1 AS string), 4, '0')) AS product_id",
        "k % 5 + 1 AS quantity",
        "cast(10.5 AS decimal(12,2)) AS unit_price",
        "cast((k % 5 + 1) * 10.5 AS decimal(14,2)) AS total_price",
        "'USD' AS currency",
        "element_at(array('north','south','east','west'), cast(k % 4 AS int) + 1) AS region",
        "element_at(array('web','mobile','pos'), cast(k % 3 AS int) + 1) AS channel",
        "CAST(NULL AS string) AS coupon_code",
    ).withColumn("event_date", F.to_date("event_timestamp")).write.format("delta").partitionBy(
        "tenant_id", "event_date"
    ).save(path)


def produce(settings: Any, work: Path, events: int, seed: int) -> dict[str, Any]:
    """Send ``events`` orders over the 30 days from FIRST_DAY to the run's topic with PRODUCERS processes; what
    they sent. BenchError when a process fell behind its schedule or a message was not delivered."""
    from lakehouse.kafka.admin import client_config

    start_at = time.time() + 2.0
    per_process = events / PRODUCERS
    procs = []
    for index in range(PRODUCERS):
        plan = LoadPlan(
            event_types=["orders"],
            phases=[(PRODUCER_RATE, per_process / PRODUCER_RATE)],
            start_at=start_at,
            seed=seed * 100 + index,
            event_start=datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC).isoformat(),
            client=client_config(settings),
            result_file=str(work / f"producer-{index}.json"),
            late_fraction=LATE_FRACTION,
            days=DAYS,
        )
        plan_file = work / f"producer-{index}-plan.json"
        plan_file.write_text(json.dumps(asdict(plan)))
        with (work / f"producer-{index}.log").open("ab") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "lakehouse.scripts.bench_stream_load", str(plan_file)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    outcomes = []
    for index, proc in enumerate(procs):
        result = work / f"producer-{index}.json"
        if proc.wait() != 0 or not result.is_file():
            raise BenchError(f"producer {index} failed (exit code {proc.returncode}); see {work}/producer-{index}.log")
        outcomes.append(json.loads(result.read_text()))
    due = sum(o["phases"][0]["due"] for o in outcomes)
    sent = sum(o["phases"][0]["sent"] for o in outcomes)
    failed = sum(o["failed"] + o["undelivered"] for o in outcomes)
    if sent != due or failed:
        raise BenchError(
            f"the producers sent {sent} of {due} events ({failed} not delivered): lower PRODUCER_RATE "
            f"({PRODUCER_RATE:.0f}/s per process) in {__name__}"
        )
    labels: dict[str, int] = {}
    for outcome in outcomes:
        for name, n in outcome["labels"].items():
            labels[name] = labels.get(name, 0) + n
    return {"messages": sent, "labels": labels}


def stream_silver(settings: Any, work: Path) -> float:
    """``lakehouse stream --event-type orders --available-now`` on the run's config; its seconds."""
    log = work / "stream.log"
    t0 = time.perf_counter()
    with log.open("ab") as out:
        code = subprocess.run(
            [str(Path(sys.executable).parent / "lakehouse"), "stream", "--event-type", "orders", "--available-now"],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise BenchError(f"the stream exited with code {code}; {log}:\n{tail}")
    return time.perf_counter() - t0


def expected_orders(spark: Any, settings: Any, topic: str, day: date) -> int:
    """Placed plus cancelled orders of ``day`` computed from what Kafka holds (independently of Silver and Gold):
    the valid messages by the producer's label header, distinct (tenant, order, group) per event type, the day
    taken from each event's own time."""
    from pyspark.sql import functions as F

    from lakehouse.spark.io import kafka as kafka_io

    options = {**kafka_io.source_options(settings, topic, None), "includeHeaders": "true", "endingOffsets": "latest"}
    value = F.col("value").cast("string")
    rows = (
        spark.read.format("kafka")
        .options(**options)
        .load()
        .select(
            F.expr(f"cast(filter(headers, h -> h.key = '{HEADER}')[0].value AS string)").alias("label"),
            *[
                F.get_json_object(value, f"$.{name}").alias(name)
                for name in ("event_type", "tenant_id", "order_id", "event_timestamp")
            ],
        )
        .where(F.col("label").isin(*VALID_LABELS))
        .where(F.col("event_type").isin("ORDER_PLACED", "ORDER_CANCELLED"))
        .where(F.to_date(F.to_timestamp("event_timestamp")) == F.lit(day))
    )
    return int(rows.select("event_type", "tenant_id", "order_id").distinct().count())


def bench_incremental(events_per_day: int, stream_s_per_event: float | None) -> dict[str, Any]:
    """Gold fct_orders_daily: one day (incremental) vs 30 days (full rebuild) over the same Silver table, written
    by the stream unless ``stream_s_per_event`` (measured at a smaller volume) puts it over STREAM_BUDGET_S."""
    from lakehouse.config.marts import mart
    from lakehouse.config.specs import load_event_types
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.spark.jobs.gold import build
    from lakehouse.spark.session import get_spark

    tag = uuid.uuid4().hex[:6]
    work = bench_home() / f"gold-{tag}"
    env = use(isolated_config(tag, work), work / "lake", work / "checkpoints")
    events = events_per_day * DAYS
    estimate = None if stream_s_per_event is None else stream_s_per_event * events
    streamed = estimate is None or estimate <= STREAM_BUDGET_S
    silver: dict[str, Any] = {"estimated_produce_and_stream_s": estimate, "budget_s": STREAM_BUDGET_S}
    orders = load_event_types()["orders"]
    if streamed:
        ensure_topics(env, [orders])
        t0 = time.perf_counter()
        sent = produce(env, work, events, seed=events_per_day % 9973)
        produce_s = time.perf_counter() - t0
        stream_s = stream_silver(env, work)
        silver.update(
            written_by="stream (lakehouse stream --event-type orders --available-now) over events produced to Kafka",
            produced=sent,
            produce_s=produce_s,
            stream_s=stream_s,
            s_per_event=(produce_s + stream_s) / events,
        )
    spark = get_spark("bench", own_driver=True)
    if not streamed:
        t0 = time.perf_counter()
        write_silver_orders(spark, env.storage.table_path("silver", "orders"), events_per_day, FIRST_DAY, DAYS)
        silver.update(
            written_by="bulk Spark write (write_silver_orders): the stream's estimate is over the budget",
            write_s=time.perf_counter() - t0,
        )
    table = spark.read.format("delta").load(env.storage.table_path("silver", "orders"))
    silver["rows"] = table.count()
    silver["files"] = len(table.inputFiles())
    silver["days_with_rows"] = table.select("event_date").distinct().count()
    history = spark.sql(f"DESCRIBE HISTORY delta.`{env.storage.table_path('silver', 'orders')}`")
    silver["commits"] = history.count()
    spec = mart("fct_orders_daily")
    build(spark, env, spec, FIRST_DAY, FIRST_DAY + timedelta(days=DAYS))  # warm-up: JIT, caches, table creation

    def timed(start: date, days: int) -> float:
        t0 = time.perf_counter()
        build(spark, env, spec, start, start + timedelta(days=days))
        return time.perf_counter() - t0

    full_runs = [timed(FIRST_DAY, DAYS) for _ in range(3)]
    day = FIRST_DAY + timedelta(days=15)
    one_day_runs = [timed(day, 1) for _ in range(3)]
    found = (
        spark.read.format("delta")
        .load(env.storage.table_path("gold", spec.name))
        .where(f"order_date = date'{day.isoformat()}'")
        .selectExpr("sum(orders_placed + orders_cancelled) AS n")
        .first()
    )
    expected = expected_orders(spark, env, orders.topic, day) if streamed else events_per_day
    if found is None or found["n"] != expected:
        raise BenchError(f"Gold {day}: {found}, expected {expected} placed + cancelled orders")
    full, one_day = statistics.median(full_runs), statistics.median(one_day_runs)
    return {
        "events_per_day": events_per_day,
        "silver_rows": silver["rows"],
        "silver": silver,
        "checked_day": day.isoformat(),
        "checked_orders": expected,
        "full_30_days_s": full,
        "full_30_days_raw_s": full_runs,
        "incremental_1_day_s": one_day,
        "incremental_1_day_raw_s": one_day_runs,
        "ratio": one_day / full,
    }


def bench_incremental_volumes(volumes: list[int]) -> list[dict[str, Any]]:
    """``bench_incremental`` at each daily volume, smallest first; a streamed volume's seconds per event estimate
    the next volume's produce + stream time."""
    results: list[dict[str, Any]] = []
    rate: float | None = None
    for volume in sorted(volumes):
        result = bench_incremental(volume, rate)
        rate = result["silver"].get("s_per_event", rate)
        results.append(result)
    return results
