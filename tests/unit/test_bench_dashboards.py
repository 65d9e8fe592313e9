"""The dashboards benchmark's section of docs/benchmarks.md: one row per chart and case, the whole dashboard, and
each target's verdict from the recorded p95s."""

from __future__ import annotations

from typing import Any

from lakehouse.scripts.bench_dashboards import dashboards_section
from lakehouse.scripts.bench_report import run_line

RUN = {
    "command": "python -m lakehouse.scripts.bench dashboards",
    "started": "2026-12-02 09:00 UTC",
    "git_sha": "0123456789abcdef0123456789abcdef01234567",
    "machine": "2 cores (test), 1 GiB RAM, Linux",
}


def _latency(p95: float) -> dict[str, float]:
    return {"runs": 5, "p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 + 1, "max_ms": p95 + 2}


def _result(chart_p95: float, dashboard_p95: float) -> dict[str, Any]:
    return {
        "dashboard": "Revenue",
        "fact_rows": 10_035_200,
        "days": 784,
        "window_rows": 921_600,
        "fill_s": 60.0,
        "runs_per_chart_and_case": 5,
        "charts": {"Channel mix": {"all_tenants": _latency(chart_p95), "one_tenant": _latency(20)}},
        "render": {**_latency(dashboard_p95), "charts_drawn": 3},
        "targets": {
            "chart_p95_ms": 1000.0,
            "dashboard_p95_ms": 3000.0,
            "chart_met": chart_p95 <= 1000,
            "dashboard_met": dashboard_p95 <= 3000,
        },
    }


def test_the_section_has_a_row_per_chart_and_case_and_the_verdicts() -> None:
    lines = dashboards_section({"run": RUN, "result": _result(1500, 2500)}, run_line)
    text = "\n".join(lines)
    assert "| Channel mix | all tenants | 750 | 1500 | 1501 | 1502 |" in lines
    assert "| Channel mix | one tenant | 10 | 20 | 21 | 22 |" in lines
    assert "| whole dashboard (3 charts), in Chromium | all tenants | 1250 | 2500 | 2501 | 2502 |" in lines
    assert "p95 <= 1000 ms per chart: **not met**" in text
    assert "p95 <= 3000 ms for the whole dashboard: **met**" in text
    assert "10,035,200 rows" in text and "commit 0123456789ab" in text


def test_with_the_data_cache_the_forced_and_the_cached_cases_each_have_rows_and_a_verdict() -> None:
    result = _result(600, 4000)
    result["data_cache_seconds"] = 300
    result["charts"]["Channel mix"]["all_tenants_cached"] = _latency(40)
    result["render_cached"] = _latency(1800)
    result["targets"]["dashboard_cached_met"] = True
    lines = dashboards_section({"run": RUN, "result": result}, run_line)
    text = "\n".join(lines)
    assert "| Channel mix | all tenants, forced | 300 | 600 | 601 | 602 |" in lines
    assert "| Channel mix | one tenant, forced | 10 | 20 | 21 | 22 |" in lines
    assert "| Channel mix | all tenants, cached | 20 | 40 | 41 | 42 |" in lines
    assert "| whole dashboard (3 charts), in Chromium | all tenants, forced | 2000 | 4000 | 4001 | 4002 |" in lines
    assert "| whole dashboard (3 charts), in Chromium | all tenants, cached | 900 | 1800 | 1801 | 1802 |" in lines
    assert "for the whole dashboard: **not met** forced, **met** cached." in text
    assert "data cache on disk (300 s)" in text


def test_no_run_no_section() -> None:
    assert dashboards_section(None, run_line) == []


def test_the_tenant_isolation_table_has_each_login_that_ran_and_its_ratios_to_the_owner() -> None:
    def login(p50: float, p95: float, owner: tuple[float, float] | None = None) -> dict[str, float]:
        summary = {**_latency(p95), "p50_ms": p50}
        if owner:
            summary |= {"p50_ratio": p50 / owner[0], "p95_ratio": p95 / owner[1]}
        return summary

    owner = (100.0, 200.0)
    rls = {
        "Channel mix, all tenants": {
            "owner": login(*owner),
            "all_tenants": login(110, 220, owner),
            "every_tenant": login(300, 700, owner),
        },
        "Channel mix, one tenant": {"owner": login(*owner), "one_tenant": login(150, 300, owner)},
    }
    lines = dashboards_section({"run": RUN, "result": {**_result(500, 2500), "rls": rls}}, run_line)
    rows = [line for line in lines if line.startswith("| Channel mix, ")]
    assert rows == [
        "| Channel mix, all tenants | table owner (no policy applies) | 5 | 100.0 | 200.0 | 1 | 1 |",
        "| Channel mix, all tenants | member of bi_all_tenants (Superset's reader) | 5 | 110.0 | 220.0 | 1.10 | 1.10 |",
        "| Channel mix, all tenants | bi_reader login mapped to all 100 tenants | 5 | 300.0 | 700.0 | 3.00 | 3.50 |",
        "| Channel mix, one tenant | table owner (no policy applies) | 5 | 100.0 | 200.0 | 1 | 1 |",
        "| Channel mix, one tenant | bi_reader login mapped to the queried tenant | 5 | 150.0 | 300.0 | 1.50 | 1.50 |",
    ]
    assert lines[-1] == (
        "Largest p95 ratio to the owner's: member of bi_all_tenants (Superset's reader) **1.10**; bi_reader login "
        "mapped to the queried tenant **1.50**; bi_reader login mapped to all 100 tenants **3.50**."
    )
