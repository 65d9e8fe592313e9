"""What every benchmark run records about itself: the commit, a hash of the configuration, the machine, the CPU
time stolen by the hypervisor while it ran, and the PostgreSQL durability settings it ran with."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.scripts.bench_stream_stats import cpu_times, steal_share

ROOT = Path(__file__).resolve().parents[1]
# what `SHOW` reports of the serving database's durability
PG_DURABILITY = ("fsync", "synchronous_commit", "full_page_writes", "wal_level")


def git_sha(root: Path = ROOT) -> str:
    """HEAD's commit, with ``+dirty`` when tracked files differ from it; ``unknown`` outside a git checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}+dirty" if changed else sha


def config_hash(config: Path = ROOT / "config") -> str:
    """sha256 over the names and bytes of every ``*.yaml`` and ``*.json`` file under ``config`` (event types,
    contracts, marts, environments), in path order; the first 16 hex digits."""
    digest = hashlib.sha256()
    files = sorted(p for pattern in ("*.yaml", "*.json") for p in config.rglob(pattern) if p.is_file())
    for path in sorted(files, key=lambda p: p.relative_to(config).as_posix()):
        digest.update(path.relative_to(config).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def machine() -> str:
    """One line describing the machine."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_kib // 1024 // 1024} GiB RAM, {platform.system()} {platform.release()}"
    )


def read_cpu() -> list[int]:
    """The aggregate CPU times of /proc/stat now."""
    return cpu_times(Path("/proc/stat").read_text())


def pg_durability(dsn: str) -> dict[str, str]:
    """The durability settings of the PostgreSQL server at ``dsn``."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in PG_DURABILITY}  # type: ignore[index]


class RunRecord:
    """Started when a benchmark run starts; ``finish`` returns what the run records about itself."""

    def __init__(self, command: str, dsn: str) -> None:
        self.command = command
        self.dsn = dsn
        self.started = datetime.now(UTC)
        self.cpu_before = read_cpu()

    def finish(self) -> dict[str, Any]:
        """The record: command, start and end (UTC), git SHA, config hash, machine, cores, CPU steal over the run,
        PostgreSQL durability."""
        steal = steal_share(self.cpu_before, read_cpu())
        return {
            "command": self.command,
            "started": f"{self.started:%Y-%m-%d %H:%M} UTC",
            "finished": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "git_sha": git_sha(),
            "config_sha256": config_hash(),
            "machine": machine(),
            "cores": os.cpu_count(),
            "cpu_steal": steal,
            "postgres": pg_durability(self.dsn),
        }
