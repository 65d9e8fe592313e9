"""docs/benchmarks.md and docs/benchmarks.json from ``make bench`` runs (``lakehouse.scripts.bench``).

Each run writes its raw results to docs/bench/<time>-<commit>.json. docs/benchmarks.json keeps, per benchmark, the
latest run's results with that run's record (command, commit, config hash, machine, CPU steal, PostgreSQL
durability), so a run of one benchmark replaces only its own section. ``python -m lakehouse.scripts.bench_report``
renders docs/benchmarks.md again from docs/benchmarks.json."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.scripts.bench_dashboards import dashboards_section
from lakehouse.scripts.bench_hostile import hostile_section
from lakehouse.scripts.bench_model_quality import model_quality_section
from lakehouse.scripts.bench_report_serving import bi_section, incremental_section, loader_section
from lakehouse.scripts.bench_scoring import scoring_section
from lakehouse.scripts.bench_serving_model import model_serving_section
from lakehouse.scripts.bench_stream_report import stream_section

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "docs" / "benchmarks.json"
RAW = ROOT / "docs" / "bench"
SECTIONS = (
    "stream",
    "loader",
    "bi",
    "incremental",
    "model_serving",
    "model_quality",
    "scoring",
    "dashboards",
    "hostile",
)


def run_line(run: dict[str, Any]) -> str:
    """One line naming the run a section comes from."""
    parts = [f"Run: `{run['command']}`, {run['started']}"]
    if run.get("git_sha"):
        parts.append(f"commit {run['git_sha'][:12]}{'+dirty' if run['git_sha'].endswith('+dirty') else ''}")
    if run.get("config_sha256"):
        parts.append(f"config {run['config_sha256']}")
    parts.append(run["machine"])
    if run.get("cpu_steal") is not None:
        parts.append(f"CPU steal {run['cpu_steal']:.1%} over the run")
    if run.get("postgres"):
        parts.append("PostgreSQL " + ", ".join(f"{k}={v}" for k, v in run["postgres"].items()))
    else:
        parts.append("(recorded before runs recorded their commit, config, CPU steal and PostgreSQL settings)")
    return "; ".join(parts) + "."


def write_report(results: dict[str, Any], run: dict[str, Any]) -> Path:
    """Record this run's results (raw file, docs/benchmarks.json) and render docs/benchmarks.md."""
    RAW.mkdir(parents=True, exist_ok=True)
    raw = RAW / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{run['git_sha'][:7]}.json"
    raw.write_text(json.dumps({"run": run, "results": results}, indent=2, default=str))
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    # a section of the format before runs were recorded with it is left out
    merged = {name: entry for name, entry in previous.items() if name in SECTIONS and "result" in entry}
    merged.update({name: {"run": run, "result": result} for name, result in results.items()})
    RESULTS.write_text(json.dumps({k: merged[k] for k in SECTIONS if k in merged}, indent=2, default=str))
    REPORT.write_text(render(merged))
    return REPORT


def render(merged: dict[str, Any]) -> str:
    """docs/benchmarks.md from each benchmark's latest run."""
    lines = [
        "# Benchmarks",
        "",
        "Each section comes from the run named under its heading (raw results in `docs/benchmarks.json`, and per "
        "run in `docs/bench/`). The machine is shared and noisy: compare the ratios measured side by side in one "
        "run, not absolute numbers across runs.",
        "",
        *stream_section(merged.get("stream"), run_line),
    ]
    lines += loader_section(merged.get("loader"), run_line)
    lines += bi_section(merged.get("bi"), run_line)
    lines += incremental_section(merged.get("incremental"), run_line)
    lines += model_serving_section(merged.get("model_serving"), run_line)
    lines += model_quality_section(merged.get("model_quality"), run_line)
    lines += scoring_section(merged.get("scoring"), run_line)
    lines += dashboards_section(merged.get("dashboards"), run_line)
    lines += hostile_section(merged.get("hostile"), run_line)
    return "\n".join(lines)


def main() -> None:
    """Render docs/benchmarks.md from docs/benchmarks.json."""
    REPORT.write_text(render(json.loads(RESULTS.read_text())))
    print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
