"""``bench stream``: the streaming path under a sustained, open-loop load (issue 15).

1. Silver pre-filled to steady state (untimed): ``--prefill-rows`` rows over the three Silver tables, spread over
   ``--prefill-days`` days up to today, written as Delta in the stream's own layout.
2. Sustained rate: one run of ``lakehouse.spark.jobs.stream`` (every event type, ``--trigger-seconds``, its own
   checkpoint and topics) under producers that send all three topics, first for ``--lead-in-seconds`` at the
   first step's rate (the fresh JVM compiles for minutes), then at each rate of ``--steps`` in turn, each
   for ``--warmup-seconds`` then ``--step-seconds``, with 2% duplicates, 1% malformed, 1% contract-invalid and
   1% late events. Every ``--sample-seconds`` the backlog is sampled: Kafka end offsets (summed over the topics)
   minus the messages whose micro-batch has committed Silver, quarantine and dead letters (the sum of
   ``input_rows`` in ``lakehouse_meta.stream_batches`` for the run's checkpoints). A step is sustained when the
   producers delivered its rate and the backlog's least-squares slope over the second half of the step is at most
   ``--slope-tolerance`` times the rate; a step that is not ends the run, unless it finished more events/s than
   each step before it.
3. Freshness: a fresh run at 25%, 50% and 80% of the sustained rate each, for the same lead-in, warm-up and
   step time; per event sent after the warm-up, from its Kafka timestamp (the time its producer was due to send it)
   to the timestamp of the Delta commit that made it visible in Silver (the commit whose userMetadata names the row's
   ``_silver_batch``). When the producers stop, the stream drains its backlog and stops; then every message is
   checked: valid events in Silver once, invalid ones in the quarantine, malformed ones in the dead letters.
4. The per-row ceiling of the stream's rules on the last freshness run's messages, with a no-op sink.
5. The dedup state's eviction per key held (``bench_state``), and what it would cost at steady state at the rate
   the freshness runs were based on: the runs start with an empty state.
"""

from __future__ import annotations

import argparse
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lakehouse.config.settings import Settings
from lakehouse.config.specs import EventTypeSpec, load_event_types
from lakehouse.scripts.bench_cpu import cpu_window
from lakehouse.scripts.bench_env import ROOT, bench_home, use
from lakehouse.scripts.bench_serving import serving_freshness_run
from lakehouse.scripts.bench_state import state_eviction, steady_state
from lakehouse.scripts.bench_stream_lake import (
    freshness,
    gates,
    prefill_silver,
    produced,
    rules_ceiling,
    silver_commit_times,
    silver_duplicates,
)
from lakehouse.scripts.bench_stream_run import Probe, Producers, StreamRun, batch_stats
from lakehouse.scripts.bench_stream_stats import (
    SLOPE_TOLERANCE,
    Sample,
    StepVerdict,
    judge_step,
    next_step_worth_running,
    sustained_rate,
)

# the share of the sustained rate produce -> serving.order_revenue_5min is measured at
SERVING_SHARE = 0.5


@dataclass
class StreamOptions:
    """The protocol's parameters (defaults: the full run of ``make bench``)."""

    steps: list[int] = field(default_factory=lambda: [5_000, 7_500, 10_000, 25_000, 50_000, 75_000])
    step_seconds: int = 180
    warmup_seconds: int = 60
    lead_in_seconds: int = 240
    prefill_rows: int = 10_000_000
    prefill_days: int = 30
    trigger_seconds: float = 1.0
    max_records_per_batch: int = 200_000
    freshness_fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.8])
    freshness_rates: list[int] = field(default_factory=list)
    sample_seconds: float = 2.0
    slope_tolerance: float = SLOPE_TOLERANCE
    producer_rate: int = 20_000
    drain_seconds: int = 600
    state_keys: int = 2_000_000
    keep: bool = False

    def changed(self) -> dict[str, Any]:
        """The parameters that differ from the full run's."""
        default = StreamOptions()
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)
        }


def comma_numbers(kind: type[int] | type[float]) -> Any:
    """An argparse type: comma-separated numbers of `kind`."""
    return lambda text: [kind(v) for v in text.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The streaming benchmark's flags (defaults: the full run)."""
    d = StreamOptions()
    group = parser.add_argument_group("stream (defaults: the full run)")
    group.add_argument(
        "--steps", type=comma_numbers(int), default=d.steps, help="events/s of the steps, comma-separated"
    )
    group.add_argument("--step-seconds", type=int, default=d.step_seconds, help="measured time of a step or a run")
    group.add_argument("--warmup-seconds", type=int, default=d.warmup_seconds, help="unmeasured time before it")
    group.add_argument(
        "--lead-in-seconds",
        type=int,
        default=d.lead_in_seconds,
        help="unmeasured time at the first rate before a stream's first warm-up (its JVM is still compiling)",
    )
    group.add_argument("--prefill-rows", type=int, default=d.prefill_rows, help="Silver rows written before the runs")
    group.add_argument("--prefill-days", type=int, default=d.prefill_days, help="days the prefill spreads over")
    group.add_argument("--trigger-seconds", type=float, default=d.trigger_seconds, help="of the stream")
    group.add_argument("--max-records-per-batch", type=int, default=d.max_records_per_batch, help="of the stream")
    group.add_argument(
        "--freshness-fractions", type=comma_numbers(float), default=d.freshness_fractions, help="of the sustained rate"
    )
    group.add_argument(
        "--freshness-rates",
        type=comma_numbers(int),
        default=d.freshness_rates,
        help="events/s, instead of the fractions",
    )
    group.add_argument("--sample-seconds", type=float, default=d.sample_seconds, help="between two backlog samples")
    group.add_argument(
        "--slope-tolerance", type=float, default=d.slope_tolerance, help="sustained: backlog slope <= this x rate"
    )
    group.add_argument("--producer-rate", type=int, default=d.producer_rate, help="events/s per producer process")
    group.add_argument(
        "--drain-seconds", type=int, default=d.drain_seconds, help="longest wait for a freshness run's backlog"
    )
    group.add_argument(
        "--state-keys", type=int, default=d.state_keys, help="keys in the dedup state whose eviction is measured"
    )
    group.add_argument("--keep", action="store_true", help="keep the lake and the topics")


def options_from(args: argparse.Namespace) -> StreamOptions:
    """The options parsed by ``add_arguments``."""
    return StreamOptions(**{f.name: getattr(args, f.name) for f in fields(StreamOptions)})


def _event_start() -> datetime:
    """Generated events fall in the last day (late ones up to three days earlier): on the Silver tables' last days,
    where a steady-state stream's duplicate lookups read."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


def sustained(options: StreamOptions, bench_dir: Path, prefill: Settings, event_start: datetime) -> dict[str, Any]:
    """One stream run under the steps in turn; a step that is not sustained ends it unless it finished more than
    each step before it (``next_step_worth_running``)."""
    run = StreamRun("steps", bench_dir, prefill, options.trigger_seconds, options.max_records_per_batch)
    run.start()
    lead, step_s = float(options.lead_in_seconds), float(options.warmup_seconds + options.step_seconds)
    lead_in = [(float(options.steps[0]), lead)] if lead > 0 else []
    phases = lead_in + [(float(rate), step_s) for rate in options.steps]
    producers = Producers(run, phases, event_start, seed=1, per_process=options.producer_rate)
    first = producers.start_at + lead  # the first step's start
    meter = run.cpu_meter(producers.pids)
    probe = Probe(run, meter)
    samples: list[Sample] = []
    verdicts: list[StepVerdict] = []
    try:
        for index, rate in enumerate(options.steps):
            begin = first + index * step_s
            samples += probe.until(begin + step_s, options.sample_seconds)
            verdict = judge_step(samples, rate, begin + options.warmup_seconds, begin + step_s, options.slope_tolerance)
            verdicts.append(verdict)
            print(f"step {rate:,.0f} events/s: {verdict}", flush=True)
            if not next_step_worth_running(verdicts):
                break
    finally:
        producers.stop()
        run.stop()
    load = producers.results()
    batches = probe.batches()
    probe.close()
    commits = silver_commit_times(run.settings, run.specs, run.started)
    steps = []
    for index, verdict in enumerate(verdicts):
        begin = first + index * step_s
        steps.append(
            {
                **verdict.as_dict(),
                "producer": load["phases"][len(lead_in) + index],
                "batches": batch_stats(batches, commits, begin + options.warmup_seconds, begin + step_s),
                "cpu": cpu_window(meter.readings, samples, begin + options.warmup_seconds, begin + step_s),
            }
        )
    if not options.keep:
        run.clean_up()
    lowest = [s for s in samples if first + options.warmup_seconds <= s.t <= first + step_s]
    finished = (lowest[-1].processed - lowest[0].processed) / (lowest[-1].t - lowest[0].t) if len(lowest) > 1 else 0.0
    return {
        "steps": steps,
        "lowest_step_finished_rate": finished,
        "not_run": options.steps[len(verdicts) :],
        "stop_rule": "gaining",
        "sustained_rate": sustained_rate(verdicts),
        "producer_failed": load["failed"] + load["undelivered"],
        "samples": [[round(s.t - producers.start_at, 2), s.end_offsets, s.processed] for s in samples],
    }


def freshness_run(
    spark: Any, options: StreamOptions, bench_dir: Path, prefill: Settings, rate: int, event_start: datetime, seed: int
) -> tuple[dict[str, Any], StreamRun]:
    """A stream run at one fixed rate: freshness of the events sent after the warm-up, then (once the stream has
    drained its backlog and stopped) the correctness gates over every message."""
    run = StreamRun(f"fresh{rate}x", bench_dir, prefill, options.trigger_seconds, options.max_records_per_batch)
    run.start()
    unmeasured = float(options.lead_in_seconds + options.warmup_seconds)
    seconds = unmeasured + options.step_seconds
    producers = Producers(run, [(float(rate), seconds)], event_start, seed=seed, per_process=options.producer_rate)
    meter = run.cpu_meter(producers.pids)
    probe = Probe(run, meter)
    try:
        measured_from, end = producers.start_at + unmeasured, producers.start_at + seconds
        samples = probe.until(end, options.sample_seconds)
        load = producers.results()
        verdict = judge_step(samples, rate, measured_from, end, options.slope_tolerance)
        drain_from = time.time()
        samples.append(probe.sample())  # every message is in Kafka now: the stream drains a fixed backlog
        while samples[-1].gap > 0 and time.time() - drain_from < options.drain_seconds:
            samples += probe.until(time.time() + options.sample_seconds, options.sample_seconds)
        drained = samples[-1].gap == 0
        drain_s = time.time() - drain_from
        batches = probe.batches()
    finally:
        producers.stop()
        probe.close()
        run.stop()
    truth = produced(spark, run.settings, run.topics).cache()
    checks = gates(spark, run.settings, run.specs, truth)
    commits = silver_commit_times(run.settings, run.specs, run.started)
    fresh = freshness(spark, run.settings, run.specs, truth, commits, int(measured_from * 1000))
    truth.unpersist()
    checks["silver_duplicates"] = silver_duplicates(spark, run.settings, run.specs)
    checks["drained"] = drained
    checks["kafka_holds_what_was_sent"] = checks["labels"] == load["labels"]
    checks["passed"] = bool(
        checks["passed"]
        and drained
        and checks["kafka_holds_what_was_sent"]
        and fresh["unmapped"] == 0
        and not any(checks["silver_duplicates"].values())
        and load["failed"] + load["undelivered"] == 0
    )
    print(f"freshness at {rate:,} events/s: {fresh}; gates passed: {checks['passed']}", flush=True)
    return {
        "rate": rate,
        "verdict": verdict.as_dict(),
        "producer": {**load["phases"][0], "processes": load["processes"], "failed": load["failed"]},
        "drain_s": drain_s,
        "gates": checks,
        "freshness": fresh,
        "batches": batch_stats(batches, commits, measured_from, end),
        "cpu": cpu_window(meter.readings, samples, measured_from, end),
    }, run


def _steady_state(
    result: dict[str, Any], specs: list[EventTypeSpec], per_key_us: float | None = None
) -> dict[str, float | None] | None:
    """The dedup state's eviction at steady state (at ``per_key_us`` per key held, by default Spark's operator's),
    at the rate the freshness runs were based on, with the share of messages the last freshness run accepted and the
    batch interval of the lowest step (of the highest-rate freshness run when that step measured none)."""
    per_key_us = result["state"]["eviction_us_per_key"] if per_key_us is None else per_key_us
    runs = [*result["sustained"]["steps"][:1], *reversed(result["freshness"])]
    interval = next((i for run in runs if (i := run["batches"].get("silver_commit_interval_p50_s"))), None)
    gates = result["freshness"][-1]["gates"] if result["freshness"] else None
    if per_key_us is None or not interval or not gates or not gates["messages"]:
        return None
    return steady_state(
        per_key_us,
        result["freshness_base"],
        gates["silver"]["expected"] / gates["messages"],
        [spec.dedup_watermark_ms for spec in specs],
        interval,
    )


def bench_stream(options: StreamOptions) -> dict[str, Any]:
    """The whole protocol; ``passed`` is False when a correctness gate failed (that run's folder and topics are
    then kept, and so is the benchmark's folder)."""
    from lakehouse.spark.session import get_spark

    bench_dir = bench_home() / f"stream-{uuid.uuid4().hex[:6]}"
    prefill = use(ROOT / "config", bench_dir / "prefill", bench_dir / "prefill-checkpoints")
    specs = list(load_event_types().values())
    spark = get_spark("bench", own_driver=True)
    event_start = _event_start()
    result: dict[str, Any] = {"options": asdict(options), "changed": options.changed(), "lake": str(bench_dir)}
    print(f"== prefill: {options.prefill_rows:,} Silver rows", flush=True)
    result["prefill"] = prefill_silver(
        spark, prefill, specs, options.prefill_rows, options.prefill_days, datetime.now(UTC).date()
    )
    print(f"== sustained rate: steps {options.steps}", flush=True)
    result["sustained"] = sustained(options, bench_dir, prefill, event_start)
    base, source = result["sustained"]["sustained_rate"], "the sustained rate"
    if base is None:  # no step sustained: what the stream finished over the lowest step, if it finished anything
        base = result["sustained"]["lowest_step_finished_rate"]
        source = "the rate finished over the lowest step's measured time"
        if base < 0.01 * options.steps[0]:
            base, source = options.steps[0], "the lowest step (the stream finished almost nothing in it)"
    result["freshness_base"], result["freshness_base_source"] = base, source
    rates = options.freshness_rates or [max(1, round(f * base)) for f in options.freshness_fractions]
    result["freshness"] = []
    runs: list[StreamRun] = []
    for index, rate in enumerate(rates):
        print(f"== freshness at {rate:,} events/s", flush=True)
        fresh, run = freshness_run(spark, options, bench_dir, prefill, rate, event_start, seed=10 + index)
        result["freshness"].append({**fresh, "share_of_base": rate / base if base else None})
        runs.append(run)
    if runs:
        print("== per-row ceiling", flush=True)
        result["ceiling"] = rules_ceiling(spark, runs[-1].settings, runs[-1].specs)
    print("== dedup state eviction", flush=True)
    result["state"] = state_eviction(spark, bench_dir / "state", options.state_keys)
    result["state"]["steady"] = _steady_state(result, specs)
    for measured in result["state"]["operators"].values():
        measured["steady"] = _steady_state(result, specs, measured["eviction_us_per_key"])
    print("== produce -> serving.order_revenue_5min", flush=True)
    serving_rate = max(1, round(SERVING_SHARE * base))
    serving_run = StreamRun("serving", bench_dir, None, options.trigger_seconds, options.max_records_per_batch)
    result["serving_freshness"] = serving_freshness_run(
        spark,
        serving_run,
        serving_rate,
        options.lead_in_seconds + options.warmup_seconds,
        options.step_seconds,
        event_start,
        options.drain_seconds,
        options.producer_rate,
    )
    print(f"serving freshness: {result['serving_freshness']}", flush=True)
    if not options.keep and not result["serving_freshness"]["missing"]:
        serving_run.clean_up()
    result["passed"] = (
        all(r["gates"]["passed"] for r in result["freshness"]) and not (result["serving_freshness"]["missing"])
    )
    if not options.keep:
        for run, fresh in zip(runs, result["freshness"], strict=True):
            if fresh["gates"]["passed"]:
                run.clean_up()
        if result["passed"]:
            shutil.rmtree(bench_dir, ignore_errors=True)
    return result
