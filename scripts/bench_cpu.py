"""Where a streaming benchmark run's CPU goes: the stream JVM's threads grouped by what they do, the stream's Python
processes and the rest of the machine, read from /proc each time the benchmark samples its backlog, so the report
can say how much of the two cores each part used over a step's measured time."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from lakehouse.scripts.bench_meta import read_cpu
from lakehouse.scripts.bench_stream_stats import Sample

# JVM threads by the start of their name (/proc shows the first 15 characters), in the report's order
THREAD_GROUPS: dict[str, tuple[str, ...]] = {
    "tasks": ("Executor task",),
    "jit": ("C1 CompilerThre", "C2 CompilerThre"),
    "py4j": ("Thread-",),  # py4j's ClientServerConnection threads: the Python driver's calls into the JVM
    "query_threads": ("stream executio",),
    "gc": ("GC Thread", "VM Thread", "G1 "),
    "scheduler": (
        "dag-scheduler",
        "dispatcher-",
        "task-result-",
        "spark-listener",
        "broadcast-exch",
        "shuffle-exchang",
        "ResultQueryStag",
        "element-trackin",
    ),
}
JVM_OTHER = "jvm_other"
PYTHON = "python"
PRODUCERS = "producers"
BROKER = "broker"
POSTGRES = "postgres"
REST = "rest"
IDLE = "idle"
GROUP_LABELS = {
    "tasks": "Spark tasks",
    "jit": "JIT compilers",
    "py4j": "JVM calls from Python (py4j)",
    "query_threads": "query threads (planning, offsets, commits)",
    "gc": "garbage collection",
    "scheduler": "Spark scheduler and listeners",
    JVM_OTHER: "other JVM threads",
    PYTHON: "the stream's Python processes",
    PRODUCERS: "producers",
    BROKER: "Kafka brokers",
    POSTGRES: "PostgreSQL",
    REST: "rest of the machine",
    IDLE: "idle",
}
# what the stream itself uses, of the groups above
STREAM_GROUPS = (*THREAD_GROUPS, JVM_OTHER, PYTHON)
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def thread_group(name: str) -> str:
    """The group of a JVM thread by its name; ``jvm_other`` for any thread no group names."""
    return next((group for group, starts in THREAD_GROUPS.items() if name.startswith(starts)), JVM_OTHER)


def thread_cpu(stat_line: str) -> tuple[str, float]:
    """A thread's name and CPU seconds (user + system) from its /proc/<pid>/task/<tid>/stat line."""
    name_start, name_end = stat_line.index("("), stat_line.rindex(")")
    fields = stat_line[name_end + 2 :].split()
    # fields after the name start at the state (field 3): utime and stime are fields 14 and 15
    return stat_line[name_start + 1 : name_end], (int(fields[11]) + int(fields[12])) * _TICK_S


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (user, nice, system, interrupts), not idle, I/O wait or steal."""
    user, nice, system, _idle, _iowait, irq, softirq, _steal = read_cpu()
    return (user + nice + system + irq + softirq) * _TICK_S


@dataclass(frozen=True)
class CpuReading:
    """Cumulative CPU seconds per group at wall-clock time ``t``, counted from the meter's first reading."""

    t: float
    seconds: dict[str, float]


@dataclass
class CpuMeter:
    """Reads the CPU of the stream's process tree (its JVM, whose threads it groups, and the JVM's Python
    descendants), of the producer processes, of every Kafka broker and PostgreSQL server on the machine, and of
    the whole machine. A thread's or process's CPU counts from the reading before the one that first sees it; what
    a JVM thread used between its last reading and its end counts under ``jvm_other``, from the JVM's process
    total, and what an ended process used since its last reading under ``rest``."""

    root_pid: int
    producer_pids: list[int] = field(default_factory=list)
    readings: list[CpuReading] = field(default_factory=list)
    _jvm: psutil.Process | None = None
    _servers: dict[str, list[psutil.Process]] = field(default_factory=dict)
    _threads: dict[int, float] = field(default_factory=dict)
    _processes: dict[int, float] = field(default_factory=dict)
    _jvm_total: float = 0.0
    _machine: float = 0.0
    _totals: dict[str, float] = field(default_factory=dict)

    def read(self, t: float | None = None) -> CpuReading | None:
        """Take a reading (at ``t``, epoch seconds, default now); None while the stream has no JVM yet."""
        t = time.time() if t is None else t
        jvm = self._find_jvm()
        if jvm is None:
            return None
        threads = _jvm_threads(jvm.pid)
        jvm_total = _process_cpu(jvm)
        machine = machine_busy_s()
        processes = {
            (group, p.pid): _process_cpu(p) for group, members in self._process_groups(jvm).items() for p in members
        }
        if self.readings:
            added = dict.fromkeys([*STREAM_GROUPS, PRODUCERS, BROKER, POSTGRES], 0.0)
            for tid, (name, cpu) in threads.items():
                added[thread_group(name)] += cpu - self._threads.get(tid, 0.0)
            added[JVM_OTHER] += max(0.0, (jvm_total - self._jvm_total) - sum(added.values()))
            for (group, pid), cpu in processes.items():
                added[group] += cpu - self._processes.get(pid, 0.0)
            added[REST] = max(0.0, (machine - self._machine) - sum(added.values()))
            for group, seconds in added.items():
                self._totals[group] = self._totals.get(group, 0.0) + seconds
        self._threads = {tid: cpu for tid, (_, cpu) in threads.items()}
        self._processes = {pid: cpu for (_, pid), cpu in processes.items()}
        self._jvm_total, self._machine = jvm_total, machine
        reading = CpuReading(t, dict(self._totals))
        self.readings.append(reading)
        return reading

    def _find_jvm(self) -> psutil.Process | None:
        if self._jvm is not None and self._jvm.is_running():
            return self._jvm
        try:
            root = psutil.Process(self.root_pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return None
        self._jvm = next((p for p in tree if _name(p) == "java"), None)
        return self._jvm

    def _process_groups(self, jvm: psutil.Process) -> dict[str, list[psutil.Process]]:
        """The processes of each group other than the JVM's threads: the JVM's descendants, the producers, the
        brokers and PostgreSQL servers (found once; a server's backends are its children at each reading)."""
        if not self._servers:
            self._servers = {BROKER: [], POSTGRES: []}
            for process in psutil.process_iter(["name", "cmdline", "ppid"]):
                info = process.info
                if info["name"] == "java" and "kafka.Kafka" in (info["cmdline"] or []):
                    self._servers[BROKER].append(process)
                elif info["name"] == "postgres" and _name_of(info["ppid"]) != "postgres":
                    self._servers[POSTGRES].append(process)
        producers = [p for p in (_process(pid) for pid in self.producer_pids) if p is not None]
        servers = {
            group: [member for server in members for member in [server, *_descendants(server)]]
            for group, members in self._servers.items()
        }
        return {PYTHON: _descendants(jvm), PRODUCERS: producers, **servers}


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _name(process: psutil.Process) -> str:
    try:
        return str(process.name())
    except psutil.NoSuchProcess:
        return ""


def _name_of(pid: int) -> str:
    process = _process(pid)
    return _name(process) if process is not None else ""


def _process_cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def _descendants(process: psutil.Process) -> list[psutil.Process]:
    try:
        return list(process.children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _jvm_threads(pid: int) -> dict[int, tuple[str, float]]:
    threads: dict[int, tuple[str, float]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return threads  # the JVM has ended: the probe's next liveness check says so
    for task in tasks:
        try:
            threads[int(task.name)] = thread_cpu((task / "stat").read_text())
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended while the folder was read
    return threads


def cpu_window(readings: Sequence[CpuReading], samples: Sequence[Sample], start: float, end: float) -> dict[str, Any]:
    """The CPU of the readings between ``start`` and ``end``: per group, the cores it used on average and the CPU
    milliseconds per event the stream finished in that time (from the samples taken with the readings); empty
    when fewer than two readings fall in the window."""
    inside = [r for r in readings if start <= r.t <= end]
    if len(inside) < 2:
        return {}
    first, last = inside[0], inside[-1]
    seconds = last.t - first.t
    processed = {s.t: s.processed for s in samples}
    events = processed.get(last.t, 0) - processed.get(first.t, 0)
    used = {group: last.seconds.get(group, 0.0) - first.seconds.get(group, 0.0) for group in last.seconds}
    cores = psutil.cpu_count() or 1
    used[IDLE] = max(0.0, cores * seconds - sum(used.values()))
    return {
        "seconds": round(seconds, 2),
        "cores": cores,
        "events": events,
        "cores_used": {group: round(cpu / seconds, 3) for group, cpu in used.items()},
        "cpu_ms_per_event": {
            group: round(1000 * cpu / events, 4) if events > 0 else None for group, cpu in used.items()
        },
    }
