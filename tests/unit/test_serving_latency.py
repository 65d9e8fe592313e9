"""The model server's latency windows in memory: percentiles by nearest rank, the counts of each window and model
version, windows aligned on the epoch, the partial window at shutdown, the cost of recording a request, and a write
that fails (no PostgreSQL listening) keeping a bounded number of windows. Writing into PostgreSQL:
tests/integration/test_model_serving.py."""

from __future__ import annotations

import logging
import random
import socket
import time
from array import array

import pytest

from lakehouse.ml.latency import LatencyMonitor, LatencyRecorder, VersionTally, Window, nearest_rank, summarize

MS = 1_000_000  # nanoseconds


def test_nearest_rank_is_the_smallest_value_with_the_share_at_or_below_it() -> None:
    one_to_twenty = list(range(1, 21))
    assert [nearest_rank(one_to_twenty, p) for p in (50, 95, 99, 100)] == [10, 19, 20, 20]
    one_to_two_hundred = list(range(1, 201))
    assert [nearest_rank(one_to_two_hundred, p) for p in (50, 95, 99)] == [100, 190, 198]
    assert [nearest_rank([7], p) for p in (50, 95, 99)] == [7, 7, 7]
    assert [nearest_rank([3, 9], p) for p in (50, 51, 99)] == [3, 9, 9]
    with pytest.raises(ValueError, match="at least one"):
        nearest_rank([], 50)


def test_a_window_is_summarized_per_model_version_in_milliseconds() -> None:
    shuffled = [n * MS for n in range(1, 101)]
    random.Random(3).shuffle(shuffled)
    window = Window(
        start=1_800_000_000.0,
        end=1_800_000_060.0,
        tallies={
            "7": VersionTally(array("q", shuffled), requests=104, texts=250, errors_4xx=3, errors_5xx=1),
            "": VersionTally(requests=2, errors_5xx=2),
        },
    )
    refused, served = summarize(window, "host:5001/42", "m")

    assert (served.model_version, served.requests, served.texts, served.errors_4xx, served.errors_5xx) == (
        "7", 104, 250, 3, 1,
    )  # fmt: skip
    assert (served.p50_ms, served.p95_ms, served.p99_ms, served.max_ms) == (50.0, 95.0, 99.0, 100.0)
    assert served.window_start.isoformat() == "2027-01-15T08:00:00+00:00"
    assert served.window_end.isoformat() == "2027-01-15T08:01:00+00:00"
    assert (served.server, served.model_name) == ("host:5001/42", "m")
    # only 503s: counted, no latency
    assert (refused.model_version, refused.requests, refused.errors_5xx) == ("", 2, 2)
    assert (refused.p50_ms, refused.p95_ms, refused.p99_ms, refused.max_ms) == (None, None, None, None)


def test_requests_are_counted_per_version_and_status_with_their_latency() -> None:
    recorder = LatencyRecorder(window_seconds=3600)
    before = time.perf_counter_ns()
    recorder.record(before - 5 * MS, 200, 3, "1")
    recorder.record(before - 2 * MS, 200, 1, "1")
    recorder.record(before, 422, 0, "1")
    recorder.record(before, 415, 0, "1")
    recorder.record(before, 500, 0, "1")
    recorder.record(before, 200, 4, "2")
    recorder.record(before, 503, 0, "")
    after = time.perf_counter_ns()
    (window,) = recorder.take_finished(closing=True)

    one, two, none = window.tallies["1"], window.tallies["2"], window.tallies[""]
    assert (one.requests, one.texts, one.errors_4xx, one.errors_5xx) == (5, 4, 2, 1)
    assert (two.requests, two.texts, two.errors_4xx, two.errors_5xx) == (1, 4, 0, 0)
    assert (none.requests, none.texts, none.errors_4xx, none.errors_5xx) == (1, 0, 0, 1)
    # a latency runs from the given start to the moment record is called
    assert 5 * MS <= one.latencies_ns[0] <= after - before + 5 * MS
    assert 2 * MS <= one.latencies_ns[1] <= after - before + 2 * MS
    assert len(one.latencies_ns) == 2 and len(two.latencies_ns) == 1 and len(none.latencies_ns) == 0


def test_windows_are_aligned_on_the_epoch_and_the_last_one_ends_at_shutdown() -> None:
    created = time.time()
    recorder = LatencyRecorder(window_seconds=1)
    recorder.record(time.perf_counter_ns(), 200, 1, "1")
    assert recorder.take_finished() == []  # the window has not ended
    time.sleep(recorder.seconds_left() + 0.01)
    recorder.record(time.perf_counter_ns(), 200, 2, "1")
    time.sleep(0.01)
    (first,) = recorder.take_finished()
    closed = time.time()
    (last,) = recorder.take_finished(closing=True)

    # the first window starts with the recorder and ends on a whole second, where the next one starts
    assert created <= first.start < first.end == int(first.start) + 1
    assert first.tallies["1"].texts == 1
    assert last.start == first.end and last.tallies["1"].texts == 2
    assert last.start < last.end <= closed + 0.01 and last.end < last.start + 1


def test_windows_without_requests_are_left_out() -> None:
    recorder = LatencyRecorder(window_seconds=1)
    time.sleep(recorder.seconds_left() + 0.01)
    assert recorder.take_finished() == []
    assert recorder.take_finished(closing=True) == []


def test_recording_a_request_costs_microseconds() -> None:
    recorder = LatencyRecorder(window_seconds=3600)
    requests = 200_000
    started = time.perf_counter_ns()
    for _ in range(requests):
        recorder.record(started, 200, 1, "1")
    per_request_us = (time.perf_counter_ns() - started) / requests / 1000
    # about 0.5 us on an idle core; the bound leaves room for a loaded machine
    assert per_request_us < 10, f"{per_request_us:.2f} us per request"


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_failed_write_warns_once_and_keeps_the_newest_windows(caplog: pytest.LogCaptureFixture) -> None:
    nobody = f"postgresql://postgres@127.0.0.1:{_unused_port()}/lakehouse"
    monitor = LatencyMonitor(LatencyRecorder(), nobody, "host:1/2", "m", max_pending=2)
    windows = [Window(float(n), n + 1.0, {"1": VersionTally(array("q", [MS]), requests=1, texts=1)}) for n in range(3)]

    with caplog.at_level(logging.WARNING, logger="lakehouse.ml.latency"):
        assert monitor.write(windows[:1]) is False
        assert monitor.write(windows[1:]) is False

    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert warnings[0].startswith("could not write 1 latency window(s) of the model server (kept for the next try)")
    assert warnings[1].startswith("could not write 2 latency window(s) of the model server (kept for the next try; 1 ")
    assert "serving.ml_serving_latency in postgres@127.0.0.1:" in warnings[1]
    assert "OperationalError" in warnings[1] and warnings[1].endswith("or point LAKEHOUSE_PG_DSN at it")
