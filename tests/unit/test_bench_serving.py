"""Pure helpers of the loader, BI and incremental benchmarks, and their report sections."""

from __future__ import annotations

from pathlib import Path

from lakehouse.scripts import bench_report_serving as sections
from lakehouse.scripts.bench_bi import named_queries
from lakehouse.scripts.bench_common import expected_units, latency_summary, percentile


def _run_line(run: dict[str, object]) -> str:
    return f"Run: {run['command']}."


def test_percentile_takes_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100: rank round(q * 99)

    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0


def test_latency_summary_of_a_thousand_runs() -> None:
    ms = [float(v) for v in reversed(range(1000))]

    summary = latency_summary(ms)

    assert summary == {"runs": 1000, "p50_ms": 499.5, "p95_ms": 949.0, "p99_ms": 989.0, "max_ms": 999.0}


def test_expected_units_is_the_sum_of_id_mod_120() -> None:
    for rows in (0, 1, 119, 120, 121, 50_000):
        assert expected_units(rows) == sum(i % 120 for i in range(rows))


def test_named_queries_splits_on_name_comments(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text("-- header\n-- name: a\nSELECT 1\nFROM t;\n\n-- name: b\n-- a comment\nSELECT 2;\n")

    assert named_queries(path) == {"a": "SELECT 1\nFROM t", "b": "SELECT 2"}


def _q(p95: float) -> dict[str, float]:
    return {"runs": 1000, "p50_ms": 1.0, "p95_ms": p95, "p99_ms": 9.0, "max_ms": 20.0}


def test_the_bi_section_shows_every_case_and_says_the_page_cache_was_not_dropped() -> None:
    cases = {case: {"q1": _q(2.5)} for case in sections.BI_CASES}
    cases["cold"]["q1"] |= {"first_run_ms": 40.0}
    result = {
        "fact_rows": 12_800,
        "days": 31,
        "fill_s": 1.0,
        "runs_per_query_and_case": 1000,
        "clients": 8,
        "swap_day": "2024-01-31",
        "os_page_cache_dropped": False,
        "os_page_cache_note": "OSError: Read-only file system",
        "loader_swaps": {"swaps": 7, "swap_s": {"p50_ms": 1500.0}},
        "cases": cases,
        "postgres": {"fsync": "on", "synchronous_commit": "on"},
    }

    text = "\n".join(sections.bi_section({"run": {"command": "bench bi"}, "result": result}, _run_line))

    assert "PostgreSQL settings during the run (`SHOW`): fsync=on, synchronous_commit=on." in text
    assert "| q1 | warm, 8 concurrent clients (threads, a connection each) | 1,000 | 1.0 | 2.5 | 9.0 | 20.0 |" in text
    assert "could not be dropped (OSError: Read-only file system)" in text
    assert "q1 40.0 ms" in text
    assert "(7 swaps while the queries ran, median 1.5 s each)" in text


def test_the_incremental_section_names_the_silver_of_each_volume() -> None:
    common = {"silver_rows": 30, "incremental_1_day_s": 1.0, "full_30_days_s": 20.0, "ratio": 0.05}
    streamed = {
        "events_per_day": 1,
        **common,
        "silver": {
            "produce_s": 3.0,
            "stream_s": 30.0,
            "produced": {"messages": 33},
            "s_per_event": 1.0,
            "files": 60,
            "rows": 30,
            "days_with_rows": 33,
            "commits": 2,
        },
    }
    bulk = {
        "events_per_day": 10,
        **common,
        "silver": {"estimated_produce_and_stream_s": 900.0, "budget_s": 600.0, "files": 150},
    }

    text = "\n".join(sections.incremental_section({"run": {"command": "x"}, "result": [streamed, bulk]}, _run_line))

    assert "| 1 | stream (3 s producing + 30 s streaming) | 30 | 60 | 1.00 | 20.00 | **5%** | met |" in text
    assert "| 10 | bulk write (stream estimated at 900 s > 600 s budget) |" in text
    assert "10 events/day: Silver **bulk-written**" in text
    assert "30 Silver rows on 33 days" in text


def test_a_result_of_an_earlier_protocol_is_not_shown() -> None:
    old = {"run": {"command": "make bench"}, "result": {"rows": 3, "copy_loader_s": 1.0}}

    text = "\n".join(sections.loader_section(old, _run_line))

    assert "Not measured with this protocol yet: `python -m lakehouse.scripts.bench loader`." in text
