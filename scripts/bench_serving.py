"""produce -> ``serving.order_revenue_5min`` freshness for ``make bench``: the stream and the revenue stream
(``lakehouse.spark.jobs.revenue_stream``) run side by side on a lake of their own, under the open-loop load of
the three topics at one rate; every placed order sent after the warm-up is timed from its Kafka timestamp to the
end of the revenue micro-batch that first read the Silver commit holding it (its audit row in
``lakehouse_meta.stream_batches``, written after that batch's upsert into serving commits)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.scripts.bench_stream_lake import COORDINATES, produced
from lakehouse.scripts.bench_stream_run import Probe, Producers, StreamRun
from lakehouse.scripts.bench_stream_stats import batch_tag
from lakehouse.scripts.errors import BenchError

REVENUE_STREAM = "lakehouse.spark.jobs.revenue_stream"
REVENUE_QUERY = "revenue_5min"
# the revenue stream's micro-batch interval: what `lakehouse stream-revenue` runs with by default
REVENUE_TRIGGER_SECONDS = 5.0


def silver_versions(silver_table: str) -> dict[str, int]:
    """``_silver_batch`` tag -> version of the Silver commit that named it in its ``userMetadata``."""
    versions: dict[str, int] = {}
    for path in sorted((Path(silver_table) / "_delta_log").glob("*.json")):
        for line in path.read_text().splitlines():
            if '"commitInfo"' not in line:
                continue
            with contextlib.suppress(ValueError, TypeError):
                meta = json.loads(json.loads(line)["commitInfo"].get("userMetadata") or "")
                versions[batch_tag(str(meta["app_id"]), int(meta["batch_id"]))] = int(path.stem)
    return versions


def visible_at(batches: list[tuple[list[int], float]], versions: set[int]) -> dict[int, float]:
    """For each Silver version, the end (epoch ms) of the first revenue batch whose version range reached it;
    versions no batch reached are left out."""
    ordered = sorted((finished_ms, ranges[1]) for ranges, finished_ms in batches if ranges)
    found: dict[int, float] = {}
    for version in versions:
        found_at = next((finished_ms for finished_ms, last in ordered if last >= version), None)
        if found_at is not None:
            found[version] = found_at
    return found


def _revenue_batches(dsn: str, app_id: str) -> list[tuple[list[int], float]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT offset_ranges, extract(epoch FROM finished_at) * 1000 FROM lakehouse_meta.stream_batches "
            "WHERE query = %s AND app_id = %s",
            (REVENUE_QUERY, app_id),
        ).fetchall()
    # offset_ranges is jsonb: {"<Silver table>": [first, last]}
    return [(next(iter(ranges.values()), []), float(ms)) for ranges, ms in rows]


def serving_freshness_run(
    spark: SparkSession,
    run: StreamRun,
    rate: int,
    warmup_s: int,
    measured_s: int,
    event_start: Any,
    drain_s: int,
    per_process: int,
) -> dict[str, Any]:
    """One run at ``rate`` events/s with the revenue stream beside the stream (``run`` has no prefill: the
    revenue stream would first read all of it)."""
    from lakehouse.spark.submit import submit_command, submit_env

    run.start()
    log = run.work / "revenue_stream.log"
    argv = submit_command(run.settings, REVENUE_STREAM, [f"--trigger-seconds={REVENUE_TRIGGER_SECONDS}"])
    with log.open("ab") as out:
        revenue = subprocess.Popen(
            argv, env=submit_env(run.settings), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    producers = Producers(run, [(float(rate), float(warmup_s + measured_s))], event_start, 90, per_process)
    probe = Probe(run)
    orders_table = run.settings.storage.table_path("silver", "orders")
    checkpoint = Path(run.settings.storage.checkpoint_path(REVENUE_QUERY))
    try:
        measured_from = producers.start_at + warmup_s
        probe.until(producers.start_at + warmup_s + measured_s, 2.0)
        load = producers.results()
        deadline = time.time() + drain_s
        while probe.sample().gap > 0 and time.time() < deadline:  # the stream drains what was sent
            time.sleep(2)
        app_id = next((checkpoint / "lakehouse_app_id").glob("part-*")).read_text().strip()
        latest = max(silver_versions(orders_table).values(), default=-1)
        # then the revenue stream reads the last Silver commit
        while time.time() < deadline and not any(
            r and r[1] >= latest for r, _ in _revenue_batches(run.settings.postgres_dsn(), app_id)
        ):
            if revenue.poll() is not None:
                raise BenchError(f"the revenue stream exited with code {revenue.returncode}; see {log}")
            time.sleep(2)
        batches = _revenue_batches(run.settings.postgres_dsn(), app_id)
    finally:
        producers.stop()
        probe.close()
        if revenue.poll() is None:
            os.killpg(revenue.pid, signal.SIGTERM)
            revenue.wait(timeout=120)
        run.stop()
    versions = silver_versions(orders_table)
    seen = visible_at(batches, set(versions.values()))
    orders_topic = next(spec.topic for spec in run.specs if spec.name == "orders")
    truth = produced(spark, run.settings, [orders_topic]).where(F.col("label") == "clean")
    placed = (
        spark.read.format("delta")
        .load(orders_table)
        .where(F.col("event_type") == "ORDER_PLACED")
        .select(
            F.col("_kafka_topic").alias("topic"),
            F.col("_kafka_partition").alias("partition"),
            F.col("_kafka_offset").alias("offset"),
            "_silver_batch",
        )
        .join(truth.select(*COORDINATES, "sent_ms"), list(COORDINATES))
        .where(F.col("sent_ms") >= int(measured_from * 1000))
    )
    mapping = spark.createDataFrame(
        [(tag, float(seen[v]) if v in seen else None) for tag, v in versions.items()],
        "_silver_batch string, visible_ms double",
    )
    timed = placed.join(F.broadcast(mapping), "_silver_batch", "left")
    stats = timed.agg(
        F.count(F.lit(1)).alias("orders"),
        F.count_if(F.col("visible_ms").isNull()).alias("missing"),
        F.expr("percentile(visible_ms - sent_ms, array(0.5, 0.95, 0.99))").alias("q"),
        F.max(F.col("visible_ms") - F.col("sent_ms")).alias("max"),
    ).first()
    assert stats is not None
    quantiles = [None if q is None else q / 1000 for q in (stats["q"] or [None, None, None])]
    return {
        "measured": True,
        "rate": rate,
        "orders": stats["orders"],
        "missing": stats["missing"],
        "p50_s": quantiles[0],
        "p95_s": quantiles[1],
        "p99_s": quantiles[2],
        "max_s": None if stats["max"] is None else stats["max"] / 1000,
        "revenue_batches": len(batches),
        "revenue_trigger_s": REVENUE_TRIGGER_SECONDS,
        "producer": {**load["phases"][0], "failed": load["failed"] + load["undelivered"]},
        "silver": "the run's own events only (no prefill)",
    }
