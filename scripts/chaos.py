"""The chaos run, ``make chaos``: a million events through the continuous stream while its driver and the Kafka
broker are killed (``lakehouse.scripts.chaos_stream``), then the ``gold_marts`` DAG through the stack's Airflow
while its scheduler is killed and PostgreSQL crashes (``lakehouse.scripts.chaos_gold``); each says what is done and
checked. It runs on a stack of its own (state in ``.lakehouse/chaos``; ports 49092/49093/49094 for Kafka, 45433 for
PostgreSQL, 48080 for Airflow and 45002 for Spark Connect, moved by ``LAKEHOUSE_CHAOS_KAFKA_PORT``,
``LAKEHOUSE_CHAOS_KAFKA_CONTROLLER_PORT``, ``LAKEHOUSE_CHAOS_KAFKA_SECURE_PORT``, ``LAKEHOUSE_CHAOS_PG_PORT``,
``LAKEHOUSE_CHAOS_AIRFLOW_PORT`` and ``LAKEHOUSE_CHAOS_SPARK_CONNECT_PORT``), so a demo or test stack can stay up,
with PostgreSQL durable. The report goes to docs/reliability.md (its section "The latest chaos run") and the raw
result to docs/chaos/; the run exits 1 when a check failed, keeping its lake.

    python -m lakehouse.scripts.chaos [--events N] [--rate R] [--driver-kills K] [--broker-bounces B] [--no-gold]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lakehouse.scripts.bench_env import ROOT, isolated_stack_env

CHAOS_ENV = isolated_stack_env(
    "chaos",
    {
        "KAFKA": 49092,
        "KAFKA_CONTROLLER": 49093,
        "KAFKA_SECURE": 49094,
        "PG": 45433,
        "AIRFLOW": 48080,
        "SPARK_CONNECT": 45002,
    },
)
REPORT = ROOT / "docs" / "reliability.md"
RAW = ROOT / "docs" / "chaos"
MARKER = "## The latest chaos run"


def report_section(result: dict[str, Any], run: dict[str, Any], raw: Path) -> str:
    """The report's section on one run, in Markdown."""
    from lakehouse.scripts.bench_report import run_line

    plan, checks = result["plan"], result["checks"]
    lines = [
        MARKER,
        "",
        run_line(run) + f" Raw result: `{raw.relative_to(ROOT)}`.",
        "",
        f"{plan['events']:,} events over the three topics at {plan['rate']:,.0f} events/s (2% duplicates, 1% "
        "each malformed, contract-invalid and late), the stream continuous on `local[2]` with a "
        f"{plan['trigger_seconds']} s trigger; {plan['driver_kills']} driver kills and {plan['broker_bounces']} "
        f"broker bounce(s) (broker down {plan['broker_down_s']} s) in a random order, each at a random moment of "
        "its own slot of the middle 80% of the production window. "
        f"**Checks {'passed' if result['passed'] else 'FAILED'}.**",
        "",
        "| fault | at (s after producing began) | Kafka end offsets then | recovered after (s) | next fault first |",
        "|---|---|---|---|---|",
    ]
    for fault in result["faults"]:
        lines.append(
            f"| {fault['kind'].replace('_', ' ')} | {fault['at_s']} | {fault['end_offsets']:,} | "
            f"{fault['recovered_after_s']} | {'yes' if fault['overlapped'] else 'no'} |"
        )
    bronze = checks["bronze"]
    lines += [
        "",
        "Recovered means that the audit counted every message Kafka held when the fault hit; where the next fault came "
        "first, the time includes it.",
        "",
        "| check | expected | found | missing | unexpected | repeated |",
        "|---|---|---|---|---|---|",
        f"| Bronze = Kafka (topic, partition, offset) | {bronze['kafka']:,} | {bronze['bronze']:,} | "
        f"{bronze['missing']} | {bronze['unexpected']} | {bronze['repeated']} |",
    ]
    for name in ("silver", "quarantine", "dead_letters"):
        gate = checks[name]
        lines.append(
            f"| {name.replace('_', ' ')} | {gate['expected']:,} | {gate['found']:,} | {gate['missing']} | "
            f"{gate['unexpected']} | {gate['repeated']} |"
        )
    producer = result["producer"]
    lines += [
        "",
        f"Producer: {sum(p['sent'] for p in producer['phases']):,} sent, {producer['failed']} failed, "
        f"{producer['undelivered']} undelivered. Silver (key, event date) pairs held twice: "
        f"{sum(checks['silver_duplicates'].values())}. The audit counts {checks['audit']['input_rows']:,} messages "
        f"read and {checks['audit']['output_rows']:,} Silver rows. "
        f"Stream restarts: {result['stream_restarts']}, of which {result['unplanned_stream_exits']} after an exit "
        "of its own (not a kill). "
        f"Drain after the last event: {result['drain_s']} s; catch-up run: {result['catch_up_s']} s; "
        f"whole run: {result['wall_s']:,.0f} s.",
        "",
    ]
    if result.get("gold"):
        lines += gold_section(result["gold"])
    return "\n".join(lines)


def gold_section(gold: dict[str, Any]) -> list[str]:
    """The report's lines on the Gold half."""
    lines = [
        "### Gold under faults",
        "",
        f"**Checks {'passed' if gold['passed'] else 'FAILED'}.** "
        + "; ".join(f"run of {day}: {state} in {gold['run_seconds'][day]} s" for day, state in gold["runs"].items())
        + f". Tasks that needed more than one try: {gold['retried_tasks']}; Airflow components started again "
        f"after exiting on their own: {gold['airflow_restarts']}.",
        "",
        "| fault | run of | at (s after the run was triggered) | tasks running then | recovered after (s) | "
        "their tries |",
        "|---|---|---|---|---|---|",
    ]
    for fault in gold["faults"]:
        tries = ", ".join(f"{task}: {n}" for task, n in fault["tries"].items()) or "-"
        lines.append(
            f"| {fault['kind'].replace('_', ' ')} | {fault['day']} | {fault['at_s']} | "
            f"{', '.join(fault['running'])} | {fault['recovered_after_s']} | {tries} |"
        )
    lines += [
        "",
        "Recovered means that every task running when the fault hit had succeeded.",
        "",
        "| serving table = Gold | Gold rows | serving rows | missing | unexpected |",
        "|---|---|---|---|---|",
    ]
    for mart, check in gold["serving"].items():
        lines.append(
            f"| {mart} | {check['gold']:,} | {check['serving']:,} | {check['missing']} | {check['unexpected']} |"
        )
    return [*lines, ""]


def write_report(result: dict[str, Any], run: dict[str, Any]) -> Path:
    """The raw result under docs/chaos/, and the report's last section replaced by this run's."""
    RAW.mkdir(parents=True, exist_ok=True)
    raw = RAW / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{run['git_sha'][:7]}.json"
    raw.write_text(json.dumps({"run": run, "result": result}, indent=2, default=str))
    text = REPORT.read_text() if REPORT.is_file() else "# Reliability\n\n"
    head = text.split(MARKER)[0].rstrip() + "\n\n"
    REPORT.write_text(head + report_section(result, run, raw))
    return REPORT


def main(argv: list[str] | None = None) -> None:
    """Start the chaos stack, run the stream chaos, write the report; exit 1 when a check failed."""
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events over all topics (default 1,000,000)")
    parser.add_argument("--rate", type=float, default=2_000, help="events/s the producers send (default 2,000)")
    parser.add_argument("--driver-kills", type=int, default=5, help="kill -9s of the streaming driver (default 5)")
    parser.add_argument("--broker-bounces", type=int, default=1, help="kill -9s and restarts of the broker (default 1)")
    parser.add_argument("--seed", type=int, default=7, help="the faults' order and pauses, and the events")
    parser.add_argument("--no-gold", action="store_true", help="skip the Gold half (Airflow, scheduler kill, crash)")
    args = parser.parse_args(argv)
    command = (
        "make chaos"
        if not (argv or sys.argv[1:])
        else "python -m lakehouse.scripts.chaos " + " ".join(argv or sys.argv[1:])
    )
    os.environ.update(CHAOS_ENV)
    from lakehouse.config.settings import settings
    from lakehouse.postgres.migrate import migrate
    from lakehouse.scripts.bench_meta import RunRecord
    from lakehouse.scripts.chaos_stream import StreamChaosPlan, run_stream_chaos
    from lakehouse.scripts.stack import LocalStack
    from lakehouse.spark.session import get_spark

    settings.cache_clear()
    stack = LocalStack(settings())
    stack.up(("kafka", "postgres"))
    dsn = settings().postgres_dsn()
    migrate(dsn)
    record = RunRecord(command, dsn)
    plan = StreamChaosPlan(
        events=args.events,
        rate=args.rate,
        driver_kills=args.driver_kills,
        broker_bounces=args.broker_bounces,
        seed=args.seed,
    )
    work = Path(CHAOS_ENV["LAKEHOUSE_HOME"]) / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    try:
        spark = get_spark("chaos", own_driver=True)
        result = run_stream_chaos(spark, plan, work, stack.kafka).as_dict()
        if not args.no_gold:
            from lakehouse.scripts.chaos_gold import run_gold_chaos

            first = datetime.fromisoformat(result["event_start"]).date()
            gold = run_gold_chaos(spark, stack, [first, first + timedelta(days=1)], args.seed)
            result["gold"] = gold.as_dict()
            result["passed"] = result["passed"] and gold.passed
        run = record.finish()
    finally:
        stack.down()
    print(f"wrote {write_report(result, run)}")
    if not result["passed"]:
        print(f"a chaos check failed; the run's lake and logs are kept in {work}")
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
