"""The streaming half of the chaos run: events of every type, with the full fault mix, produced open-loop while the
stream runs continuously; the streaming driver is killed (``kill -9`` of its process group) and the Kafka broker
killed and restarted at random moments; then a catch-up run (available-now, in this process's Spark session) and
the checks.

For each fault the run reports how long the stream took to recover, that is until the audit
(``lakehouse_meta.stream_batches``) counted every message that Kafka held when the fault hit.
A stream that exits on its own (a broker outage can end a query) is restarted at once, as a service manager would,
and counted. The checks read Kafka back (each message carries its generator label in a header, as in the streaming
benchmark), not the stream's own counts:

- Bronze holds every Kafka message once (by topic, partition and offset);
- Silver holds one row per valid event and no (key, event date) twice;
- the quarantine holds exactly the contract-invalid messages and the dead letters exactly the malformed ones;
- the audit counts every message read once and every Silver row once, however often a batch was replayed;
- the producers lost nothing (no failed or undelivered message)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.scripts.bench_stream_lake import COORDINATES, gates, produced, silver_duplicates
from lakehouse.scripts.bench_stream_run import Probe, Producers, StreamRun
from lakehouse.scripts.bench_stream_stats import Sample
from lakehouse.scripts.errors import BenchError
from lakehouse.scripts.kafka_broker import KafkaBroker
from lakehouse.spark.io.delta import read_table

DRIVER_KILL = "driver_kill"
BROKER_BOUNCE = "broker_bounce"
SAMPLE_EVERY_S = 1.0


@dataclass(frozen=True)
class StreamChaosPlan:
    """How many events, how fast, and which faults: in a random order, each at a random moment of its own slot of
    the middle 80% of the production window, so that every fault hits while events arrive."""

    events: int
    rate: float
    driver_kills: int
    broker_bounces: int
    seed: int = 7
    broker_down_s: float = 5.0
    trigger_seconds: float = 1.0
    max_records_per_batch: int = 100_000
    producer_rate: int = 20_000
    recovery_timeout_s: float = 900.0


@dataclass
class FaultRecord:
    """One injected fault: when (seconds after the producers started), the Kafka end offsets at that moment, how
    long until the audit had counted them all, and whether another fault came before that."""

    kind: str
    at_s: float
    end_offsets: int
    recovered_after_s: float | None = None
    overlapped: bool = False


@dataclass
class StreamChaosResult:
    """What the run did and found; ``passed`` is the conjunction of the checks."""

    plan: dict[str, Any]
    event_start: str = ""
    faults: list[FaultRecord] = field(default_factory=list)
    stream_restarts: int = 0
    unplanned_stream_exits: int = 0
    producer: dict[str, Any] = field(default_factory=dict)
    drain_s: float = 0.0
    catch_up_s: float = 0.0
    wall_s: float = 0.0
    checks: dict[str, Any] = field(default_factory=dict)
    passed: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


class _Supervisor:
    """Keeps the continuous stream running: a stream that exited is started again (and counted)."""

    def __init__(self, run: StreamRun, probe: Probe) -> None:
        self.run = run
        self.probe = probe
        self.restarts = 0

    def tend(self) -> None:
        proc = self.run.proc
        if proc is not None and proc.poll() is not None:
            self.restarts += 1
            print(f"chaos: the stream exited with code {proc.returncode}; starting it again", flush=True)
            self.run.launch()

    def sample(self) -> Sample | None:
        """A backlog sample, or None while Kafka does not answer (during a broker bounce)."""
        self.tend()
        try:
            return self.probe.sample()
        except Exception as exc:  # noqa: BLE001 - the broker may be down: that is the point of the run
            print(f"chaos: no backlog sample ({type(exc).__name__}); retrying", flush=True)
            return None

    def sample_when_up(self) -> Sample:
        """The next backlog sample Kafka answers."""
        while (sample := self.sample()) is None:
            time.sleep(SAMPLE_EVERY_S)
        return sample

    def watch(
        self,
        pending: list[tuple[FaultRecord, float]],
        timeout: float,
        *,
        until_epoch: float | None = None,
        until_processed: int | None = None,
    ) -> None:
        """Sample every second, marking each pending fault (with the monotonic time it hit) recovered once the audit
        counts its end offsets; return at ``until_epoch``, or once the audit counts ``until_processed`` messages and
        no fault is pending. BenchError after ``timeout``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            sample = self.sample()
            if sample is not None:
                for record, hit_at in [p for p in pending if sample.processed >= p[0].end_offsets]:
                    record.recovered_after_s = round(time.monotonic() - hit_at, 1)
                    pending.remove((record, hit_at))
                    print(f"chaos: recovered from {record.kind} after {record.recovered_after_s}s", flush=True)
                if until_processed is not None and sample.processed >= until_processed and not pending:
                    return
            if until_epoch is not None and time.time() >= until_epoch:
                return
            time.sleep(SAMPLE_EVERY_S)
        raise BenchError(f"the stream did not catch up within {timeout:.0f}s; see {self.run.log}")


def _kill_driver(run: StreamRun) -> bool:
    """``kill -9`` of the stream's process group; False when it was not running."""
    proc = run.proc
    if proc is None or proc.poll() is not None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def _bounce_broker(broker: KafkaBroker, down_s: float) -> None:
    pid = broker.service.pid()
    if pid is None:
        raise BenchError("the chaos run found no Kafka broker of its stack to kill")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while broker.service.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(down_s)
    broker.start()


def _catch_up() -> float:
    """The available-now run on the run's checkpoints, in this process's Spark session (``use`` pointed this
    process at the run's config, lake and checkpoints): what the killed drivers left is processed as any later
    start would process it; its wall-clock seconds."""
    from lakehouse.spark.jobs import stream as stream_job

    started = time.monotonic()
    stream_job.main(["--available-now"])
    return time.monotonic() - started


def bronze_check(spark: SparkSession, run: StreamRun, truth: Any) -> dict[str, int]:
    """Bronze against Kafka: messages Kafka holds that Bronze lacks, Bronze rows Kafka does not hold, and
    coordinates Bronze holds more than once."""
    frames = []
    for spec in run.specs:
        table = read_table(spark, run.settings.storage.table_path("bronze", spec.tables.bronze))
        if table is not None:
            frames.append(table.select(*COORDINATES).where(F.col("topic") == spec.topic))
    if not frames:
        raise BenchError(f"the chaos run wrote no Bronze table under {run.settings.storage.table_path('bronze', '')}")
    bronze = frames[0]
    for frame in frames[1:]:
        bronze = bronze.unionByName(frame)
    bronze = bronze.cache()
    kafka = truth.select(*COORDINATES)
    result = {
        "kafka": kafka.count(),
        "bronze": bronze.count(),
        "missing": kafka.join(bronze, list(COORDINATES), "left_anti").count(),
        "unexpected": bronze.join(kafka, list(COORDINATES), "left_anti").count(),
        "repeated": bronze.groupBy(*COORDINATES).count().where("count > 1").count(),
    }
    bronze.unpersist()
    return result


def audit_totals(run: StreamRun) -> dict[str, int]:
    """The messages read and Silver rows written that the run's audit rows count (a replayed batch replaces its
    row, so a batch replayed after a kill is counted once)."""
    with psycopg.connect(run.settings.postgres_dsn()) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(input_rows), 0), coalesce(sum(output_rows), 0) FROM lakehouse_meta.stream_batches "
            "WHERE app_id = ANY(%s)",
            (list(run.app_ids.values()),),
        ).fetchone()
    assert row is not None
    return {"input_rows": int(row[0]), "output_rows": int(row[1])}


def run_stream_chaos(
    spark: SparkSession, plan: StreamChaosPlan, work_dir: Path, broker: KafkaBroker
) -> StreamChaosResult:
    """The run described in the module docstring, on topics, a lake and checkpoints of its own under ``work_dir``
    (kept for inspection). ``broker`` is the stack's broker, the one the run kills and restarts."""
    started = time.monotonic()
    rng = random.Random(plan.seed)
    result = StreamChaosResult(plan=asdict(plan))
    run = StreamRun("chaos", work_dir, None, plan.trigger_seconds, plan.max_records_per_batch)
    run.start()
    event_start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    result.event_start = event_start.isoformat()
    producers = Producers(run, [(plan.rate, plan.events / plan.rate)], event_start, plan.seed, plan.producer_rate)
    probe = Probe(run)
    supervisor = _Supervisor(run, probe)
    kinds = [DRIVER_KILL] * plan.driver_kills + [BROKER_BOUNCE] * plan.broker_bounces
    rng.shuffle(kinds)
    window = plan.events / plan.rate
    slot = 0.8 * window / max(1, len(kinds))
    schedule = [(0.1 * window + slot * (i + rng.uniform(0.1, 0.9)), kind) for i, kind in enumerate(kinds)]
    pending: list[tuple[FaultRecord, float]] = []
    kills = 0
    try:
        for due, kind in schedule:
            supervisor.watch(pending, window + 60, until_epoch=producers.start_at + due)
            before = supervisor.sample_when_up()
            record = FaultRecord(kind, round(time.time() - producers.start_at, 1), before.end_offsets)
            for earlier, _ in pending:
                earlier.overlapped = True
            print(f"chaos: {kind} at {record.at_s}s, Kafka end offsets {before.end_offsets:,}", flush=True)
            pending.append((record, time.monotonic()))
            result.faults.append(record)
            if kind == DRIVER_KILL:
                kills += _kill_driver(run)
            else:
                _bounce_broker(broker, plan.broker_down_s)
        supervisor.watch(pending, window + 60, until_epoch=producers.start_at + window)
        result.producer = producers.results()
        drain_from = time.monotonic()
        end = supervisor.sample_when_up().end_offsets
        supervisor.watch(pending, plan.recovery_timeout_s, until_processed=end)
        result.drain_s = round(time.monotonic() - drain_from, 1)
        result.stream_restarts = supervisor.restarts
        result.unplanned_stream_exits = supervisor.restarts - kills
    finally:
        producers.stop()
        probe.close()
        run.stop()
    result.catch_up_s = round(_catch_up(), 1)
    truth = produced(spark, run.settings, run.topics).cache()
    checks = gates(spark, run.settings, run.specs, truth)
    checks["bronze"] = bronze_check(spark, run, truth)
    truth.unpersist()
    checks["silver_duplicates"] = silver_duplicates(spark, run.settings, run.specs)
    checks["audit"] = audit_totals(run)
    checks["kafka_holds_what_was_sent"] = checks["labels"] == result.producer["labels"]
    lost = result.producer["failed"] + result.producer["undelivered"]
    result.checks = checks
    result.passed = bool(
        checks["passed"]
        and checks["kafka_holds_what_was_sent"]
        and not any(checks["bronze"][k] for k in ("missing", "unexpected", "repeated"))
        and not any(checks["silver_duplicates"].values())
        and checks["audit"] == {"input_rows": checks["bronze"]["kafka"], "output_rows": checks["silver"]["found"]}
        and lost == 0
        and len(result.faults) == len(kinds)
        and all(f.recovered_after_s is not None for f in result.faults)
    )
    result.wall_s = round(time.monotonic() - started, 1)
    return result
