"""The streaming benchmark's arithmetic, with no Spark, Kafka or PostgreSQL: the least-squares slope of the backlog,
the rule that calls a step sustained, percentiles, and the commit time of each micro-batch read from a Delta log."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# a step is sustained when the backlog grows by at most this share of the step's rate over its second half
SLOPE_TOLERANCE = 0.02
# and when the producers delivered at least this share of the step's rate into Kafka
PRODUCER_TOLERANCE = 0.02


@dataclass(frozen=True)
class Sample:
    """One look at the pipeline: wall-clock seconds, the Kafka end offsets summed over the run's topics, and how
    many of those messages the stream has finished (Silver, quarantine and dead letters committed)."""

    t: float
    end_offsets: int
    processed: int

    @property
    def gap(self) -> int:
        """Messages in Kafka that have not reached the lake yet."""
        return self.end_offsets - self.processed


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Ordinary least-squares slope of y over x; 0.0 for fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx


@dataclass(frozen=True)
class StepVerdict:
    """What one step of the sustained-rate run measured over the second half of its measured window."""

    rate: float
    samples: int
    input_rate: float  # slope of the Kafka end offsets: what the producers really delivered
    processed_rate: float  # slope of the processed count: what the stream really finished
    gap_slope: float  # slope of the backlog, events/s (> 0: growing)
    gap_end: int  # backlog at the last sample
    producer_kept_up: bool
    sustained: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_step(
    samples: Sequence[Sample],
    rate: float,
    start: float,
    end: float,
    slope_tolerance: float = SLOPE_TOLERANCE,
    producer_tolerance: float = PRODUCER_TOLERANCE,
) -> StepVerdict:
    """The verdict on a step measured from ``start`` to ``end`` (after its warm-up): over the samples of the
    window's second half, the producers kept up when the end offsets grew at >= (1 - producer_tolerance) x rate,
    and the step is sustained when, in addition, the backlog grew by at most slope_tolerance x rate per second."""
    middle = (start + end) / 2
    half = [s for s in samples if middle <= s.t <= end]
    input_rate = slope([(s.t, s.end_offsets) for s in half])
    processed_rate = slope([(s.t, s.processed) for s in half])
    gap_slope = slope([(s.t, s.gap) for s in half])
    kept_up = len(half) >= 2 and input_rate >= (1 - producer_tolerance) * rate
    return StepVerdict(
        rate=rate,
        samples=len(half),
        input_rate=input_rate,
        processed_rate=processed_rate,
        gap_slope=gap_slope,
        gap_end=half[-1].gap if half else 0,
        producer_kept_up=kept_up,
        sustained=kept_up and gap_slope <= slope_tolerance * rate,
    )


def sustained_rate(verdicts: Iterable[StepVerdict]) -> float | None:
    """The highest sustained step's rate, None when no step was sustained."""
    rates = [v.rate for v in verdicts if v.sustained]
    return max(rates) if rates else None


def next_step_worth_running(verdicts: Sequence[StepVerdict]) -> bool:
    """Whether the steps go on after ``verdicts``: after a sustained step, or after one that finished more than every
    step before it. A stream's batches grow with the rate and its costs per batch are spread over more rows, so a
    step can be sustained above one that was not; once a step not sustained finishes no more than the steps below
    it, the stream has stopped gaining."""
    if not verdicts:
        return True
    last, before = verdicts[-1], verdicts[:-1]
    return last.sustained or all(last.processed_rate > v.processed_rate for v in before)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def batch_tag(app_id: str, batch_id: int) -> str:
    """A Silver row's ``_silver_batch``: the checkpoint's app id and the micro-batch id."""
    return f"{app_id}:{batch_id}"


def commit_times(commit_files: Iterable[str], queries: Iterable[str] | None = None) -> dict[str, int]:
    """``_silver_batch`` tag -> commit time (epoch ms) of the commits whose userMetadata names a stream batch
    (JSON ``{"query", "app_id", "batch_id"}``), from the text of Delta log files (``_delta_log/<version>.json``).

    The time is the commit's ``inCommitTimestamp`` when the table has in-commit timestamps, else its ``timestamp``;
    with ``queries``, only those queries' commits are kept."""
    wanted = None if queries is None else set(queries)
    times: dict[str, int] = {}
    for text in commit_files:
        for line in text.splitlines():
            if '"commitInfo"' not in line:
                continue
            info = json.loads(line)["commitInfo"]
            try:
                meta = json.loads(info.get("userMetadata") or "")
            except ValueError:
                continue
            if not isinstance(meta, dict) or "app_id" not in meta or "batch_id" not in meta:
                continue
            if wanted is not None and meta.get("query") not in wanted:
                continue
            times[batch_tag(str(meta["app_id"]), int(meta["batch_id"]))] = int(
                info.get("inCommitTimestamp", info["timestamp"])
            )
    return times


def cpu_times(stat_text: str) -> list[int]:
    """The aggregate ``cpu`` line of /proc/stat as jiffies: user, nice, system, idle, iowait, irq, softirq,
    steal (guest time is already counted in user and nice)."""
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return [int(v) for v in fields[1:9]]
    raise ValueError("no aggregate 'cpu' line in /proc/stat")


def steal_share(before: Sequence[int], after: Sequence[int]) -> float:
    """The share of CPU time the hypervisor gave to others (steal) between two ``cpu_times`` readings."""
    deltas = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(deltas)
    return deltas[7] / total if total > 0 else 0.0
