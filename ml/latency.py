"""The model server's latency per time window (issue 17, monitoring): ``LatencyRecorder`` counts each ``POST
/predict`` in memory, ``LatencyMonitor`` writes each finished window into ``serving.ml_serving_latency``.

What is measured: the time from the moment uvicorn hands the request to the app (its headers parsed) to the moment
the answer's body is ready to send, on the server's monotonic clock. It includes reading the body, validation,
waiting for the model and the prediction; it leaves out the time before uvicorn reads the request (the network, a
connection waiting for the event loop) and sending the answer.

Windows are aligned on the epoch (``[k * w, (k + 1) * w)`` for a window of ``w`` seconds, so that the windows of
several servers line up); a request belongs to the window its answer was ready in. The first window starts when
the recorder is created and the last ends when the server stops. Recording a request appends one integer to an
array: no I/O, no lock (the server's requests are answered on one event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from lakehouse.postgres.errors import ServingError
from lakehouse.postgres.ml_latency import LatencyRow, record_windows

log = logging.getLogger(__name__)
DEFAULT_WINDOW_SECONDS = 60.0
PERCENTILES = (50, 95, 99)
# finished windows kept for the next write while PostgreSQL cannot be written (an hour of one-minute windows); the
# oldest are dropped beyond
MAX_PENDING_WINDOWS = 60
# how long after a window's end it is written: requests answered right at the end still land in it
_WRITE_DELAY_SECONDS = 0.05


@dataclass
class VersionTally:
    """One model version's requests in a window: the latency in nanoseconds of each answered 200, and counts."""

    latencies_ns: array[int] = field(default_factory=lambda: array("q"))
    requests: int = 0
    texts: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0


@dataclass(frozen=True)
class Window:
    """A finished window: its bounds (UTC, epoch seconds) and the tally of each model version (by version)."""

    start: float
    end: float
    tallies: dict[str, VersionTally]


def nearest_rank(sorted_values: Sequence[int] | np.ndarray, percent: int) -> int:
    """The ``percent``-th percentile of ascending values by nearest rank: the smallest value with at least
    ``percent`` % of the values at or below it (always one of the values)."""
    count = len(sorted_values)
    if count == 0:
        raise ValueError("no values: a percentile needs at least one")
    return int(sorted_values[max(0, -(-percent * count // 100) - 1)])


def summarize(window: Window, server: str, model_name: str) -> list[LatencyRow]:
    """The rows of a window, one per model version that answered in it, latencies in milliseconds."""
    return [
        LatencyRow(
            server=server,
            window_start=datetime.fromtimestamp(window.start, UTC),
            window_end=datetime.fromtimestamp(window.end, UTC),
            model_name=model_name,
            model_version=version,
            requests=tally.requests,
            texts=tally.texts,
            errors_4xx=tally.errors_4xx,
            errors_5xx=tally.errors_5xx,
            **_percentiles_ms(tally.latencies_ns),
        )
        for version, tally in sorted(window.tallies.items())
    ]


def _percentiles_ms(latencies_ns: array[int]) -> dict[str, float | None]:
    names = [f"p{p}_ms" for p in PERCENTILES] + ["max_ms"]
    if not latencies_ns:
        return dict.fromkeys(names)
    ordered = np.sort(np.frombuffer(latencies_ns, dtype=np.int64))
    values = [nearest_rank(ordered, p) for p in PERCENTILES] + [int(ordered[-1])]
    return {name: value / 1e6 for name, value in zip(names, values, strict=True)}


class LatencyRecorder:
    """The latencies and counts of the current window, and the windows finished since the last ``take_finished``.

    ``record`` is called on the event loop for each request; it rolls the window over when the answer is past the
    window's end, so each request lands in the window its answer was ready in even while the writer is late."""

    def __init__(self, window_seconds: float = DEFAULT_WINDOW_SECONDS) -> None:
        if window_seconds <= 0:
            raise ValueError(f"a window must last more than 0 s, not {window_seconds}")
        self.window_seconds = window_seconds
        self._finished: list[Window] = []
        self._tallies: dict[str, VersionTally] = {}
        self._start = self._end = 0.0
        self._end_ns = 0
        self._next_window(time.perf_counter_ns(), first=True)

    def record(self, started_ns: int, status: int, texts: int, version: str) -> None:
        """Count one answered request: it started at ``started_ns`` (``time.perf_counter_ns``) and its answer,
        of ``status``, is ready now; ``texts`` it predicted (counted when 200); the model version that answered
        (or that the server held; empty: none)."""
        now_ns = time.perf_counter_ns()
        if now_ns >= self._end_ns:
            self._roll(now_ns)
        tally = self._tallies.get(version)
        if tally is None:
            tally = self._tallies[version] = VersionTally()
        tally.requests += 1
        if status < 400:
            tally.latencies_ns.append(now_ns - started_ns)
            tally.texts += texts
        elif status < 500:
            tally.errors_4xx += 1
        else:
            tally.errors_5xx += 1

    def seconds_left(self) -> float:
        """Seconds until the current window ends (0 when it has)."""
        return max(0.0, (self._end_ns - time.perf_counter_ns()) / 1e9)

    def take_finished(self, closing: bool = False) -> list[Window]:
        """The windows that ended since the last call (oldest first), those without requests left out; with
        ``closing``, the current window too, ended now."""
        now_ns = time.perf_counter_ns()
        if closing or now_ns >= self._end_ns:
            self._roll(now_ns, closing)
        finished, self._finished = self._finished, []
        return [w for w in finished if w.tallies]

    def _roll(self, now_ns: int, closing: bool = False) -> None:
        end = min(self._end, time.time()) if closing else self._end
        self._finished.append(Window(self._start, max(end, self._start + 1e-3), self._tallies))
        self._tallies = {}
        self._next_window(now_ns)

    def _next_window(self, now_ns: int, first: bool = False) -> None:
        """Start the window that holds now: from the epoch-aligned boundary (not before the end of the last one),
        and convert its end to the monotonic clock ``record`` compares with."""
        now = time.time()
        boundary = now // self.window_seconds * self.window_seconds
        self._start = now if first else max(boundary, self._end)
        self._end = (boundary if first else self._start) + self.window_seconds
        self._end_ns = now_ns + round((self._end - now) * 1e9)


class LatencyMonitor:
    """Writes the recorder's finished windows into ``serving.ml_serving_latency`` as ``server`` serving
    ``model_name``: ``run`` every window until ``close``, which writes the current window too.

    A write that fails logs one warning and keeps the windows for the next write (at most ``max_pending``, the
    oldest dropped beyond); nothing of it reaches the requests."""

    def __init__(
        self,
        recorder: LatencyRecorder,
        dsn: str,
        server: str,
        model_name: str,
        max_pending: int = MAX_PENDING_WINDOWS,
    ) -> None:
        self.recorder, self.dsn, self.server, self.model_name = recorder, dsn, server, model_name
        self.max_pending = max_pending
        self._pending: deque[list[LatencyRow]] = deque()
        self._dropped = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Write each window shortly after it ends, until ``close``; then write what is left."""
        closing = False
        while not closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.recorder.seconds_left() + _WRITE_DELAY_SECONDS)
            closing = self._stopping.is_set()
            await self.flush(closing)

    def start(self) -> None:
        """Run in the background on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def close(self) -> None:
        """Stop after writing the current, partial window."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def flush(self, closing: bool = False) -> None:
        """Write the finished windows (with ``closing``, the current one too) and those a failed write left."""
        try:
            finished = self.recorder.take_finished(closing)
            if finished or self._pending:
                await asyncio.to_thread(self.write, finished)
        except Exception:
            log.exception("writing the model server's latency failed; trying again after the next window")

    def write(self, finished: Sequence[Window]) -> bool:
        """Write ``finished`` after the windows a failed write left (blocking: ``flush`` runs it on a thread);
        False when it failed (logged), the windows kept."""
        self._pending.extend(summarize(window, self.server, self.model_name) for window in finished)
        while len(self._pending) > self.max_pending:
            self._pending.popleft()
            self._dropped += 1
        try:
            record_windows(self.dsn, list(self._pending))
        except ServingError as exc:
            dropped = f"; {self._dropped} older windows dropped" if self._dropped else ""
            log.warning(
                "could not write %d latency window(s) of the model server (kept for the next try%s): %s",
                len(self._pending), dropped, exc,
            )  # fmt: skip
            return False
        self._pending.clear()
        self._dropped = 0
        return True
