"""The machinery of one streaming benchmark run: the stream job with topics and a checkpoint of its own, the probe
that samples its backlog, the open-loop producer processes, and the statistics of its micro-batches."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition

from lakehouse.config.settings import Settings
from lakehouse.config.specs import EventTypeSpec, load_event_types
from lakehouse.kafka.admin import admin_client, client_config, ensure_topics
from lakehouse.scripts.bench_cpu import CpuMeter
from lakehouse.scripts.bench_env import isolated_config, use
from lakehouse.scripts.bench_stream_load import LoadPlan
from lakehouse.scripts.bench_stream_stats import Sample, batch_tag, percentile
from lakehouse.scripts.errors import BenchError

STREAM_JOB = "lakehouse.spark.jobs.stream"
READY_TIMEOUT_S = 300.0
PRODUCER_LEAD_S = 8.0  # producer processes start this long before their schedule does
SESSION_UP = "spark session lakehouse-stream"  # the stream's log line once its driver's session exists


class StreamRun:
    """One run of the streaming job, with topics, a lake and checkpoints of its own, its Silver tables holding the
    benchmark's prefill.

    The stream refuses a new checkpoint on a Silver table with rows (its dedup state would not know their keys),
    so a run starts the stream once on empty Silver tables until each query has committed its first (empty)
    micro-batch, stops it, links the prefilled tables in (hard links: Delta never rewrites a file) and starts it
    again on that checkpoint. The dedup state therefore holds only the run's own keys; the prefill's keys are read
    from Silver, as the stream reads them for events older than its dedup watermark."""

    def __init__(
        self, name: str, bench_dir: Path, prefill: Settings | None, trigger_seconds: float, max_records_per_batch: int
    ) -> None:
        self.name = name
        self.tag = f"{name}{uuid.uuid4().hex[:6]}"
        self.stream_args = [f"--trigger-seconds={trigger_seconds}", f"--max-records-per-batch={max_records_per_batch}"]
        self.prefill = prefill
        self.work = bench_dir / self.tag
        self.work.mkdir(parents=True, exist_ok=True)
        self.settings: Settings = use(
            isolated_config(self.tag, self.work), self.work / "lake", self.work / "checkpoints"
        )
        self.specs: list[EventTypeSpec] = list(load_event_types().values())
        self.topics = [spec.topic for spec in self.specs]
        self.app_ids: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.work / "stream.log"
        self.started = time.time()
        self.checkpoints = {
            f"stream_{s.name}": Path(self.settings.storage.checkpoint_path(f"stream_{s.name}")) for s in self.specs
        }

    def launch(self) -> None:
        """Start the stream job (spark-submit, its own process group), appending to the run's log."""
        from lakehouse.spark.submit import submit_command, submit_env

        argv = submit_command(self.settings, STREAM_JOB, self.stream_args)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, env=submit_env(self.settings), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the stream of run {self.tag} did not {what} within {READY_TIMEOUT_S:.0f}s; see {self.log}"
                )
            time.sleep(1)

    def start(self) -> None:
        """Create the topics, give each query a checkpoint, link the prefilled Silver tables in, start the stream
        on them and wait until its session is up (without a prefill: start the stream and wait for its first
        batches)."""
        ensure_topics(self.settings, self.specs)
        self.launch()
        self._wait(lambda: all((c / "commits" / "0").is_file() for c in self.checkpoints.values()), "commit batch 0")
        if self.prefill is None:  # a run on its own events only: the stream goes on
            self._read_app_ids()
            return
        self.stop()
        for spec in self.specs:
            shutil.copytree(
                self.prefill.storage.table_path("silver", spec.tables.silver),
                self.settings.storage.table_path("silver", spec.tables.silver),
                copy_function=os.link,
            )
        launched = self.log.stat().st_size
        self.launch()
        # the driver's session is up: the queries start a moment later (the warm-up covers the rest)
        self._wait(lambda: SESSION_UP in self.log.read_bytes()[launched:].decode(errors="replace"), "start again")
        self._read_app_ids()

    def _read_app_ids(self) -> None:
        for query, checkpoint in self.checkpoints.items():
            self.app_ids[query] = next((checkpoint / "lakehouse_app_id").glob("part-*")).read_text().strip()

    def cpu_meter(self, producer_pids: list[int]) -> CpuMeter:
        """A meter of the CPU of the running stream, its producers and the machine (``lakehouse.scripts.bench_cpu``)."""
        if self.proc is None:
            raise BenchError(f"the stream of run {self.tag} has not been started")
        return CpuMeter(self.proc.pid, producer_pids)

    def check_alive(self) -> None:
        """BenchError with the log's tail when the stream has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
            raise BenchError(
                f"the stream of run {self.tag} exited with code {self.proc.returncode}; {self.log}:\n{tail}"
            )

    def stop(self) -> None:
        """SIGTERM the stream's process group; SIGKILL it after a minute."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def clean_up(self) -> None:
        """Delete the run's topics and folder (lake, checkpoints, logs)."""
        for future in admin_client(self.settings).delete_topics(self.topics, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result()
        shutil.rmtree(self.work, ignore_errors=True)


class Probe:
    """Samples a run's backlog (Kafka end offsets against what the stream has committed) and, with a meter, the CPU
    of the stream, its producers and the machine with each sample (``cpu.readings``)."""

    def __init__(self, run: StreamRun, cpu: CpuMeter | None = None) -> None:
        self.run = run
        self.cpu = cpu
        self.consumer = Consumer(
            {**client_config(run.settings), "group.id": f"bench-{run.tag}", "enable.auto.commit": False}
        )
        metadata = self.consumer.list_topics(timeout=10)
        self.partitions = [TopicPartition(t, p) for t in run.topics for p in metadata.topics[t].partitions]
        self.pg = psycopg.connect(run.settings.postgres_dsn(), autocommit=True)
        self.app_ids = list(run.app_ids.values())

    def sample(self) -> Sample:
        now = time.time()
        end = sum(self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in self.partitions)
        row = self.pg.execute(
            "SELECT coalesce(sum(input_rows), 0) FROM lakehouse_meta.stream_batches WHERE app_id = ANY(%s)",
            (self.app_ids,),
        ).fetchone()
        sample = Sample(now, end, int(row[0]) if row else 0)
        if self.cpu is not None:
            self.cpu.read(now)
        return sample

    def until(self, end: float, every: float) -> list[Sample]:
        """Samples every ``every`` seconds until ``end`` (epoch seconds), checking that the stream lives."""
        samples = []
        while time.time() < end:
            self.run.check_alive()
            samples.append(self.sample())
            time.sleep(max(0.0, min(every, end - time.time())))
        return samples

    def batches(self) -> list[dict[str, Any]]:
        """The audit rows of the run's non-empty micro-batches."""
        with self.pg.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute(
                "SELECT query, app_id, batch_id, started_at, processing_ms, input_rows, phase_ms "
                "FROM lakehouse_meta.stream_batches WHERE app_id = ANY(%s) AND input_rows > 0 ORDER BY started_at",
                (self.app_ids,),
            )
            return list(cur.fetchall())

    def close(self) -> None:
        self.consumer.close()
        self.pg.close()


def producer_share(rate: float, seconds: float, index: int, per_process: int) -> tuple[float, float]:
    """Producer process ``index``'s part of a phase: a phase runs on as few processes as its rate needs (one per
    ``per_process`` events/s), which send equal shares; the others sit it out. Every process on the machine's
    cores costs CPU of its own, and more processes send smaller Kafka batches, which cost the broker more per
    event: both are taken from the stream under test."""
    needed = max(1, math.ceil(rate / per_process))
    return (rate / needed if index < needed else 0.0, seconds)


class Producers:
    """The open-loop producer processes of one run (``lakehouse.scripts.bench_stream_load``)."""

    def __init__(
        self, run: StreamRun, phases: list[tuple[float, float]], event_start: datetime, seed: int, per_process: int
    ) -> None:
        count = max(1, math.ceil(max(rate for rate, _ in phases) / per_process))
        self.start_at = time.time() + PRODUCER_LEAD_S
        self.count = count
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        for index in range(count):
            result = run.work / f"producer-{index}.json"
            plan = LoadPlan(
                event_types=[spec.name for spec in run.specs],
                phases=[producer_share(rate, seconds, index, per_process) for rate, seconds in phases],
                start_at=self.start_at,
                seed=seed * 1000 + index,
                event_start=event_start.isoformat(),
                client=client_config(run.settings),
                result_file=str(result),
            )
            plan_file = run.work / f"producer-{index}-plan.json"
            plan_file.write_text(json.dumps(asdict(plan)))
            with (run.work / f"producer-{index}.log").open("ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "lakehouse.scripts.bench_stream_load", str(plan_file)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            self.procs.append((proc, result))

    @property
    def pids(self) -> list[int]:
        """The producer processes' ids."""
        return [proc.pid for proc, _ in self.procs]

    def stop(self) -> None:
        """End the plans early (each process flushes what it sent and writes its result)."""
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def results(self) -> dict[str, Any]:
        """Wait for the processes; what they sent per phase, summed, and what was not delivered."""
        outcomes = []
        for proc, result in self.procs:
            if proc.wait() != 0 or not result.is_file():
                raise BenchError(f"producer process {proc.pid} failed (exit code {proc.returncode}); see its log")
            outcomes.append(json.loads(result.read_text()))
        return combined_outcomes(outcomes, self.count)


def combined_outcomes(outcomes: list[dict[str, Any]], processes: int) -> dict[str, Any]:
    """The producer processes' results as one: per phase what was due and sent (summed), the latest a message went
    out, and how many processes had events due in it; the labels, failures and undelivered messages of all."""
    phases = [
        {
            "due": sum(o["phases"][i]["due"] for o in outcomes if i < len(o["phases"])),
            "sent": sum(o["phases"][i]["sent"] for o in outcomes if i < len(o["phases"])),
            "max_lateness_s": max(o["phases"][i]["max_lateness_s"] for o in outcomes if i < len(o["phases"])),
            "processes": sum(1 for o in outcomes if i < len(o["phases"]) and o["phases"][i]["due"] > 0),
        }
        for i in range(max(len(o["phases"]) for o in outcomes))
    ]
    labels: dict[str, int] = {}
    for outcome in outcomes:
        for name, n in outcome["labels"].items():
            labels[name] = labels.get(name, 0) + n
    return {
        "processes": processes,
        "phases": phases,
        "failed": sum(o["failed"] for o in outcomes),
        "undelivered": sum(o["undelivered"] for o in outcomes),
        "first_error": next((o["first_error"] for o in outcomes if o["first_error"]), None),
        "labels": labels,
    }


def _epoch(moment: datetime) -> float:
    """Epoch seconds of a time, naive ones being UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def batch_stats(batches: list[dict[str, Any]], commits: dict[str, int], start: float, end: float) -> dict[str, Any]:
    """The run's micro-batches started between ``start`` and ``end`` (epoch seconds): how many, rows per batch,
    processing time (all four writes and the audit row), batch start -> Silver commit, the time between two
    Silver commits of one query, and the median of each timed step (``phase_ms`` of the audit rows) over the
    batches that ran it."""
    chosen = [b for b in batches if start <= _epoch(b["started_at"]) <= end]
    to_commit = [
        commits[tag] / 1000 - _epoch(b["started_at"])
        for b in chosen
        if (tag := batch_tag(b["app_id"], b["batch_id"])) in commits
    ]
    intervals: list[float] = []
    for app_id in {b["app_id"] for b in chosen}:
        times = sorted(
            commits[t] for b in chosen if b["app_id"] == app_id and (t := batch_tag(app_id, b["batch_id"])) in commits
        )
        intervals += [(later - earlier) / 1000 for earlier, later in itertools.pairwise(times)]
    processing = [b["processing_ms"] / 1000 for b in chosen]
    phases: dict[str, list[float]] = {}
    for b in chosen:
        for phase, ms in (b.get("phase_ms") or {}).items():
            phases.setdefault(phase, []).append(ms / 1000)
    return {
        "batches": len(chosen),
        "queries": len({b["app_id"] for b in chosen}),
        "rows_per_batch": sum(b["input_rows"] for b in chosen) / len(chosen) if chosen else None,
        "processing_p50_s": percentile(processing, 0.5) if processing else None,
        "processing_p95_s": percentile(processing, 0.95) if processing else None,
        "processing_max_s": max(processing) if processing else None,
        "start_to_silver_commit_p50_s": percentile(to_commit, 0.5) if to_commit else None,
        "start_to_silver_commit_p95_s": percentile(to_commit, 0.95) if to_commit else None,
        "silver_commit_interval_p50_s": percentile(intervals, 0.5) if intervals else None,
        "silver_commit_interval_p95_s": percentile(intervals, 0.95) if intervals else None,
        "phases": {phase: {"batches": len(ts), "p50_s": percentile(ts, 0.5)} for phase, ts in sorted(phases.items())},
    }
