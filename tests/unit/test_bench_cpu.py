"""The streaming benchmark's CPU accounting: thread names and times read from /proc, a window's cores and CPU per
event (worked out by hand), and a meter on the suite's own Spark driver, checked against the JVM's process total
read from /proc/<pid>/stat by the test itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse.scripts.bench_cpu import (
    IDLE,
    JVM_OTHER,
    PRODUCERS,
    PYTHON,
    REST,
    THREAD_GROUPS,
    CpuMeter,
    CpuReading,
    cpu_window,
    thread_cpu,
    thread_group,
)
from lakehouse.scripts.bench_stream_stats import Sample

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def test_threads_are_grouped_by_the_start_of_their_name() -> None:
    assert thread_group("Executor task l") == "tasks"
    assert thread_group("C2 CompilerThre") == "jit"
    assert thread_group("C1 CompilerThre") == "jit"
    assert thread_group("Thread-12") == "py4j"
    assert thread_group("stream executio") == "query_threads"
    assert thread_group("GC Thread#1") == "gc"
    assert thread_group("dag-scheduler-e") == "scheduler"
    assert thread_group("Sweeper thread") == JVM_OTHER


def test_a_thread_stat_line_gives_its_name_and_user_plus_system_time() -> None:
    # pid (name) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    line = "4242 (odd) name) S 1 1 1 0 -1 4194560 10 0 0 0 250 75 0 0 20 0 1 0 100 0 0"

    name, seconds = thread_cpu(line)

    assert name == "odd) name"
    assert seconds == pytest.approx((250 + 75) * TICK_S)


def test_a_window_gives_cores_used_and_cpu_per_event_from_its_first_and_last_reading() -> None:
    readings = [
        CpuReading(0.0, {"tasks": 0.0, "jit": 0.0, PYTHON: 0.0, REST: 0.0}),
        CpuReading(10.0, {"tasks": 4.0, "jit": 1.0, PYTHON: 0.5, REST: 1.0}),
        CpuReading(20.0, {"tasks": 10.0, "jit": 3.0, PYTHON: 1.0, REST: 2.0}),
        CpuReading(30.0, {"tasks": 99.0, "jit": 9.0, PYTHON: 9.0, REST: 9.0}),
    ]
    samples = [Sample(0.0, 0, 0), Sample(10.0, 900, 1_000), Sample(20.0, 2_000, 3_000), Sample(30.0, 9, 9)]

    window = cpu_window(readings, samples, start=5.0, end=25.0)

    # from t=10 to t=20: tasks 6 s, JIT 2 s, Python 0.5 s, rest 1 s over 10 s; 2,000 events finished
    assert window["seconds"] == 10.0
    assert window["events"] == 2_000
    assert window["cores_used"]["tasks"] == pytest.approx(0.6)
    assert window["cores_used"]["jit"] == pytest.approx(0.2)
    assert window["cores_used"][PYTHON] == pytest.approx(0.05)
    assert window["cores_used"][REST] == pytest.approx(0.1)
    cores = window["cores"]
    assert window["cores_used"][IDLE] == pytest.approx(cores - 0.95)
    assert window["cpu_ms_per_event"]["tasks"] == pytest.approx(3.0)  # 6,000 ms / 2,000 events
    assert cpu_window(readings, samples, start=5.0, end=15.0) == {}


def _process_cpu_s(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


BUSY_PRODUCER = """
import time
start = time.process_time()
while time.process_time() - start < 0.5:
    pass
print("done", flush=True)
time.sleep(60)
"""


def test_a_meter_on_a_running_spark_driver_sees_its_tasks_and_adds_up_to_the_jvm(spark: SparkSession) -> None:
    jvm_pid = spark.sparkContext._gateway.proc.pid  # type: ignore[union-attr]
    producer_pids: list[int] = []
    meter = CpuMeter(jvm_pid, producer_pids)
    first = meter.read()
    before = _process_cpu_s(jvm_pid)
    assert first is not None and first.seconds == {}
    producer = subprocess.Popen([sys.executable, "-c", BUSY_PRODUCER], stdout=subprocess.PIPE, text=True)
    producer_pids.append(producer.pid)

    try:
        spark.range(0, 20_000_000, numPartitions=2).selectExpr("sum(crc32(cast(id as string))) as s").collect()
        assert producer.stdout is not None and producer.stdout.readline().strip() == "done"
        last = meter.read()
        after = _process_cpu_s(jvm_pid)
    finally:
        producer.kill()
        producer.wait()

    assert last is not None
    jvm_groups = [*THREAD_GROUPS, JVM_OTHER]
    jvm_seconds = sum(last.seconds[g] for g in jvm_groups)
    # the meter reads the threads, then the process: what the JVM used between the test's readings and the
    # meter's is a few clock ticks
    assert jvm_seconds == pytest.approx(after - before, abs=0.15)
    assert last.seconds["tasks"] > 0.5 * jvm_seconds
    assert all(seconds >= 0 for seconds in last.seconds.values())
    # the producer's busy half second, and its interpreter's start
    assert 0.45 <= last.seconds[PRODUCERS] <= 0.8
