"""The streaming section of docs/benchmarks.md, from one ``bench stream`` result
(``lakehouse.scripts.bench_stream``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SUSTAINED_TARGET = 50_000  # events/s
SERVING_P95_TARGET_S = 60.0
FRESHNESS_P95_TARGET_S = 5.0
NOISY_BELOW = 10  # micro-batches per query in a step's measured time
REPRODUCE = (
    "Reproduce: `make bench` (every benchmark) or `python -m lakehouse.scripts.bench stream` (this section alone; "
    "`--help` lists the parameters). A quick check of the machinery, not of the protocol: `python -m "
    "lakehouse.scripts.bench stream --steps 2000,5000 --step-seconds 40 --lead-in-seconds 0 --prefill-rows 100000`."
)


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _s(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pair(batches: dict[str, Any], first: str, second: str, third: str | None = None) -> str:
    keys = [first, second, *([third] if third else [])]
    return " / ".join(_s(batches.get(k), 2) for k in keys)


# the steps a stream batch times (spark/jobs/stream.py), in the order they run; Silver, dead letters and quarantine
# run at once, and Silver's own lookups and the late-event index's learning (after its commit) are part of its time
PHASES = {
    "offsets": "offsets (checkpoint read)",
    "bronze": "Bronze (Kafka read, parse, rules, dedup state, write)",
    "counts": "counts",
    "late_keys": "late events' keys (a new date read from Silver)",
    "silver": "Silver (all of it)",
    "silver_lookups": "of it: reference and model lookups",
    "dead_letters": "dead letters",
    "quarantine": "quarantine",
    "late_keys_new": "keys learnt for late events",
}


def _table(intro: str, columns: list[str]) -> list[str]:
    """A paragraph, then a Markdown table's head."""
    return ["", intro, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _phase_table(runs: list[dict[str, Any]]) -> list[str]:
    """Where a freshness run's batches spend their time: the median of each step over the batches that ran it."""
    if not any(run["batches"].get("phases") for run in runs):
        return []
    lines = _table(
        "Where a batch's time goes (freshness runs, measured time): the median of each step, in s, over the "
        "batches that ran it (how many in brackets); Silver, dead letters, quarantine and the keys learnt for late "
        "events run at the same time.",
        ["rate (events/s)", *PHASES.values()],
    )
    for run in runs:
        phases = run["batches"].get("phases") or {}
        cells = [
            f"{phases[name]['p50_s']:.2f} ({phases[name]['batches']})" if name in phases else "-" for name in PHASES
        ]
        lines.append(f"| {run['rate']:,} | " + " | ".join(cells) + " |")
    return lines


def _cpu_table(r: dict[str, Any]) -> list[str]:
    """Where the CPU goes over each step's and freshness run's measured time (runs recorded before the benchmark
    read the CPU have none)."""
    from lakehouse.scripts.bench_cpu import GROUP_LABELS, STREAM_GROUPS

    runs = [(f"step {s['rate']:,.0f}", s.get("cpu")) for s in r["sustained"]["steps"]]
    runs += [(f"freshness {f['rate']:,}", f.get("cpu")) for f in r["freshness"]]
    runs = [(name, cpu) for name, cpu in runs if cpu]
    if not runs:
        return []
    lines = ["", "### Where the CPU goes (measured time)"]
    lines += _table(
        f"Cores used on average, of the machine's {runs[0][1]['cores']}, by the stream's JVM threads (grouped by "
        "name), its Python processes, the load's producers, the Kafka brokers, PostgreSQL and the rest of the "
        "machine (the benchmark itself among it); the CPU per event counts the stream's JVM and Python processes "
        "over the events it finished in that time.",
        ["run (events/s)", "finished events/s", "stream CPU ms / event", *GROUP_LABELS.values()],
    )
    for name, cpu in runs:
        used = cpu["cores_used"]
        stream_s = sum(used.get(group, 0.0) for group in STREAM_GROUPS) * cpu["seconds"]
        per_event = f"{1000 * stream_s / cpu['events']:.3f}" if cpu["events"] > 0 else "-"
        cells = [f"{used.get(group, 0.0):.2f}" for group in GROUP_LABELS]
        lines.append(f"| {name} | {cpu['events'] / cpu['seconds']:,.0f} | {per_event} | " + " | ".join(cells) + " |")
    return lines


def _producers_per_step(steps: list[dict[str, Any]]) -> str:
    """How many producer processes sent each step's events, e.g. ``1 at 5,000 events/s, 2 at 25,000``."""
    if any("processes" not in step["producer"] for step in steps):
        return "not recorded by this run"
    counts = [f"{step['producer']['processes']} at {step['rate']:,.0f}" for step in steps]
    return (", ".join(counts) + " events/s") if counts else "none ran"


def _step_verdict(step: dict[str, Any]) -> str:
    if not step["producer_kept_up"]:
        reached = step["input_rate"]
        return f"producers short: {reached:,.0f} events/s reached Kafka ({reached / step['rate']:.0%})"
    verdict = "**sustained**" if step["sustained"] else "not sustained: the backlog grows"
    batches, queries = step["batches"]["batches"], step["batches"].get("queries") or 0
    if not queries:
        verdict += " (noisy: no batch started in the measured time)"
    elif batches / queries < NOISY_BELOW:
        verdict += f" (noisy: {batches / queries:.0f} batches per query measured)"
    return verdict


def _state_protocol(options: dict[str, Any]) -> list[str]:
    """How the dedup state's eviction is measured (runs recorded before it was have no ``state_keys``)."""
    if "state_keys" not in options:
        return []
    return [
        "* **Dedup state**: Spark's own `dropDuplicatesWithinWatermark` operator reads every key of its state store in "
        "every micro-batch to find the expired ones; the timer dedup the stream runs reads only the expired keys' "
        "timers. For each operator, in the benchmark's driver, two runs of one dedup query set up as the "
        "stream's (RocksDB, changelog checkpointing, two days' watermark), over a state of one batch's keys and of "
        f"{options['state_keys']:,} keys, each then taking micro-batches of new keys with nothing expiring; the "
        "difference of the runs' median eviction times (Spark's `allRemovalsTimeMs`, the timer dedup's "
        "`timerProcessingTimeMs`), per key of difference, is the "
        "cost of a key held. At steady state a query holds every accepted key of two `dedup_watermark` of event "
        "time: a key expires once the watermark, `dedup_watermark` behind the newest event, has passed the key's "
        "event time plus `dedup_watermark`."
    ]


def protocol(options: dict[str, Any]) -> list[str]:
    """How the numbers are measured, with the run's parameters."""
    steps = ", ".join(f"{s:,}" for s in options["steps"])
    fractions = ", ".join(f"{f:.0%}" for f in options["freshness_fractions"])
    lead_in = options.get("lead_in_seconds", 0)
    return [
        "### How it is measured",
        "",
        f"* **Input**: the three event types (orders, customer_events, device_metrics) in equal shares, with 2% "
        "duplicates, 1% malformed, 1% contract-invalid and 1% late events (the generator's fractions), event "
        "times in the last day (late ones up to three days earlier). Silver is pre-filled first, untimed, with "
        f"{options['prefill_rows']:,} rows split evenly over the three tables and spread evenly over "
        f"{options['prefill_days']} days up to the run's day: copies of 2,000 generated clean events per type passed "
        "through the stream's own transforms, each copy with a new event id, event time and Kafka coordinates, one "
        "file per (tenant, date) partition.",
        "* **Stream**: `lakehouse.spark.jobs.stream` for every event type (one query each), spark-submitted on "
        f"`local[2]` with `--trigger-seconds={options['trigger_seconds']:g}` and "
        f"`--max-records-per-batch={options['max_records_per_batch']}`. Each run has its own topics, lake and "
        "checkpoints. The stream refuses a new checkpoint on a Silver table with rows, so a run first starts it on "
        "empty Silver tables until each query has committed its first (empty) micro-batch, stops it, links the "
        "prefilled tables into its lake and starts it again. Its dedup state (RocksDB, within the event type's "
        "`dedup_watermark`) therefore holds only the run's own keys, not the steady state's; the prefill's keys "
        "are read from Silver, where the stream looks up events older than the watermark (the late events): each "
        "query reads a date's keys once, the first time a late event falls on it, and keeps them in memory "
        "(`late_key_dates`, docs/architecture.md).",
        "* **Load (open loop)**: producer processes (confluent-kafka, idempotent, acks=all, lz4; as many as the "
        f"running step needs at {options['producer_rate']:,} events/s each, the others idle) send message i of a step "
        "when it is due, at step start + i / rate, "
        "whatever the stream does. Its Kafka timestamp (CreateTime) is that due time, so a producer that falls "
        "behind lengthens the measured latency rather than hiding it. A step whose messages reached Kafka at less "
        "than 98% of its rate (least-squares slope of the end offsets) is reported as producers short, with the "
        "rate reached, and does not count as sustained.",
        f"* **Lead-in**: every stream run (the steps' and each of the others) first runs {lead_in} s unmeasured at "
        "its first rate, then its first warm-up: a fresh stream's JVM still compiles its hot code for minutes "
        "(about five with small batches, docs/timings.md), and a stream in production runs for days. Users feel "
        "the first minutes after a deploy too: they are not in these figures.",
        f"* **Sustained rate**: steps of {steps} events/s in one stream run, each {options['warmup_seconds']} s of "
        f"warm-up then {options['step_seconds']} s measured. Every {options['sample_seconds']:g} s the backlog is "
        "sampled: Kafka end offsets (`get_watermark_offsets`, summed over the three topics) minus the messages of "
        "the micro-batches that have committed Bronze, dead letters, Silver and quarantine (the sum of "
        "`input_rows` in `lakehouse_meta.stream_batches` for the run's checkpoints, written after those commits). "
        "Rule: a step is sustained when the least-squares slope of the backlog over the second half of its "
        f"measured time is at most {options['slope_tolerance']:.0%} of the step's rate, and the producers kept up. "
        "The sustained rate is the highest sustained step. A step that is not sustained ends the run, unless it "
        "finished more events/s than each step before it (up to 2026-12-07, the first such step ended it): "
        "bigger batches spread a batch's fixed costs over more rows, so a higher step can be sustained. "
        f"A verdict over fewer than {NOISY_BELOW} micro-batches per query is marked noisy: each commit moves the "
        "backlog by a whole batch at once, so a slope over a few batches says little.",
        f"* **Freshness**: a separate run at each of {fractions} of the sustained rate (when no step is sustained: "
        "of the rate the stream finished events at over the lowest step's measured time, or of the lowest step's "
        "rate if it finished almost nothing), with the same warm-up and measured "
        "time. For each Silver row of an event sent after the warm-up: the timestamp of the Delta commit that made "
        "it visible (`inCommitTimestamp`, else `timestamp`, of the commit whose `userMetadata` names the row's "
        "`_silver_batch`, read from the table's `_delta_log`) minus the Kafka timestamp of the copy Silver kept. "
        "Exact percentiles over every such event.",
        "* **Correctness gates** (each freshness run, after the producers stop and the stream has finished "
        f"everything in Kafka, waiting up to {options['drain_seconds']} s): every message is read back from Kafka "
        "with the producer's label (a header the stream does not read). Silver must hold exactly one row per valid "
        "event (clean, late, or duplicated: by topic and event id), at the coordinates of one of its copies; the "
        "quarantine exactly the contract-invalid messages and the dead letters exactly the malformed ones (by "
        "topic, partition, offset); Kafka must hold what the producers sent; every Silver row's batch must have its "
        "commit; no Silver table of the run (prefill included) may hold an (event_id, event_date) twice. A failed "
        "gate fails the run (`make bench` exits non-zero) and keeps its topics and lake.",
        "* **produce -> `serving.order_revenue_5min`**: a run of its own at half the sustained rate, with the same "
        "load, warm-up and measured time, on Silver tables holding only the run's events (no prefill, which the "
        "revenue stream would first read in full), with `lakehouse.spark.jobs.revenue_stream` spark-submitted beside "
        "the stream at its default 5 s trigger. For each placed order sent after the warm-up (clean ones: late "
        "orders are left to the daily build by design): the end of the first revenue micro-batch whose Silver "
        "version range reached the Silver commit holding the order (`finished_at` of its audit row, written after "
        "its serving upsert commits) minus the order's Kafka timestamp. An order no revenue batch reached within "
        "the drain time counts as missing and fails the run.",
        "* **Micro-batches**: from the audit rows (`processing_ms`: the four appends and the audit row; "
        "`phase_ms`: each step of the batch handler) and the commit timestamps (batch start to its Silver commit; "
        "time between two Silver commits of one query).",
        "* **CPU**: with each backlog sample, the CPU seconds (user and system, /proc) of every thread of the "
        "stream's JVM, of its Python processes and of the whole machine. JVM threads are grouped by name: "
        "`Executor task launch worker` (Spark tasks), `C1/C2 CompilerThread` (JIT), `Thread-N` (py4j's "
        "connections, which run the Python driver's calls), `stream execution thread` (each query's planning, "
        "offsets and commits), `GC Thread`/`VM Thread`, Spark's scheduler and listener threads; the CPU of threads "
        "that ended between two samples counts as other JVM threads. Beside it, the producer processes, every Kafka "
        "broker and PostgreSQL server on the machine with their children, and the rest: the machine's busy time "
        "(/proc/stat: user, nice, system, interrupts) minus all of those.",
        "* **Per-row ceiling**: the stream's classify, parse and quality rules over the last freshness run's "
        "messages read from Kafka, into Spark's no-op sink, in the benchmark's own `local[2]` driver (median of 3 "
        "after a warm-up); beside it, the Kafka read alone, and the rules over the same messages read into memory "
        "first (the read and its consumers' start-up, seconds on a small input, left out).",
        *_state_protocol(options),
        "* **Every run records** the commit, a hash of config/**/*.yaml and *.json, the cores, the CPU time stolen "
        "by the hypervisor over the run (/proc/stat) and the PostgreSQL durability settings; the raw results go to "
        "docs/bench/ (one file per run) and docs/benchmarks.json.",
        "",
    ]


OPERATORS = {
    "spark": "Spark's own operator",
    "timers": "The timer dedup (what the stream runs; `lakehouse.spark.timer_dedup`)",
}


def _state_lines(state: dict[str, Any], rate: float) -> list[str]:
    """The dedup state's eviction, per operator measured: per key held, and what it would cost once the state has
    filled (runs recorded before the timer dedup measured Spark's operator only, at the top level)."""
    operators: dict[str, dict[str, Any]] = state.get("operators") or {"spark": state}
    lines = [
        "",
        "### Dedup state: eviction per key held, and at steady state",
        "",
        f"Measured micro-batches of {state['keys_per_batch']:,} new keys each, after the one that filled the state.",
        "",
        "| operator | keys in the state | measured batches | eviction per batch p50 ms | batch p50 ms |",
        "|---|---|---|---|---|",
    ]
    for name, measured in operators.items():
        for run in measured["runs"]:
            lines.append(
                f"| {name} | {run['keys']:,} | {run['batches']} | {_n(run['eviction_ms_p50'])} | "
                f"{_n(run['batch_ms_p50'])} |"
            )
    for name, measured in operators.items():
        lines += ["", f"{OPERATORS.get(name, name)}: {_per_key_text(measured, rate)}"]
    if "operators" not in state:
        lines += ["", "This run measured Spark's own operator only: the stream ran it then."]
    fills = {name: m.get("fill_us_per_key") for name, m in operators.items()}
    if all(fill is not None for fill in fills.values()) and len(fills) > 1:
        lines += [
            "",
            "Writing a new key (the first batch of each larger run, into an empty state, start-up included): "
            + ", ".join(f"{name} {fill:.1f} us" for name, fill in fills.items())
            + " per key.",
        ]
    return lines


def _per_key_text(measured: dict[str, Any], rate: float) -> str:
    per_key, steady = measured["eviction_us_per_key"], measured.get("steady")
    if per_key is None:
        return "eviction per key held: not measured."
    text = f"Eviction: {per_key:.2f} us of CPU per key held, in every micro-batch."
    if measured.get("batch_us_per_key") is not None:
        text += f" Batch time: {measured['batch_us_per_key']:.2f} us per key held."
    size = (measured.get("size") or {}).get("bytes_per_key")
    if size is not None:
        text += f" On disk: {size:,.0f} bytes per key held (RocksDB's SST files, with a snapshot at every commit)"
        text += f", {steady['keys'] * size / 1e9:,.0f} GB at steady state." if steady is not None else "."
    if steady is None:
        return text + " (No batch interval was measured to work out the steady state.)"
    text += (
        f" At steady state, at {rate:,.0f} events/s, the queries' states would hold {steady['keys']:,.0f} keys "
        "(every accepted key of the last two `dedup_watermark` of event time); each query's eviction would take "
        f"{steady['eviction_s_per_batch']:,.0f} CPU-s per micro-batch, {steady['cores']:,.1f} cores at one batch "
        f"per query every {steady['batch_interval_s']:.1f} s (the lowest step's, or else the highest-rate freshness "
        "run's). **The runs above start with an empty state**: their rates hold only while it is young."
    )
    if steady["rate_for_two_cores"] is None:
        return text + " The eviction's cost per key held was not measurable above the noise."
    return text + (
        " At one batch per query in that interval, the eviction alone takes both cores at "
        f"{steady['rate_for_two_cores']:,.0f} events/s."
    )


def _gate_cells(gate: dict[str, Any]) -> str:
    counts = [gate["expected"], gate["found"], gate["missing"], gate["unexpected"]]
    counts += [gate["not_at_a_copy"]] if "not_at_a_copy" in gate else []
    return " / ".join(f"{n:,}" for n in [*counts, gate["repeated"]])


def stream_section(entry: dict[str, Any] | None, run_line: Callable[[dict[str, Any]], str]) -> list[str]:
    """The section; without a result, the protocol and a line saying it has not been measured yet."""
    from lakehouse.scripts.bench_stream import StreamOptions

    lines = ["## Streaming: Kafka -> Bronze, dead letters, Silver, quarantine (three event types, `local[2]`)", ""]
    if entry is None:
        from dataclasses import asdict

        return [
            *lines,
            "Not measured with this protocol yet.",
            "",
            REPRODUCE,
            "",
            *protocol(asdict(StreamOptions())),
        ]
    r, options = entry["result"], entry["result"]["options"]
    lines += [run_line(entry["run"]), "", REPRODUCE, ""]
    if r["changed"]:
        changed = ", ".join(f"`{k}={v}`" for k, v in r["changed"].items())
        lines += [
            f"**Not the full protocol**: this run changed {changed}; its numbers do not stand for `make bench`.",
            "",
        ]
    if not r["passed"]:
        lines += [f"**FAILED**: a correctness gate failed (below); the lake is kept in `{r['lake']}`.", ""]
    sustained = r["sustained"]
    lines += [
        "### Sustained rate",
        "",
        "| step (events/s) | reached Kafka (events/s) | finished (events/s) | backlog slope (events/s) "
        "| backlog at the end "
        "| batches | rows / batch | batch p50 / p95 s | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    caption = (
        "Reached Kafka, finished and the backlog's slope are least-squares slopes over the second half of each "
        "step's measured time, the half the verdict reads; the batches are those of the whole measured time."
    )
    for step in sustained["steps"]:
        b = step["batches"]
        lines.append(
            f"| {step['rate']:,.0f} | {step['input_rate']:,.0f} | {step['processed_rate']:,.0f} | "
            f"{step['gap_slope']:+,.0f} ({step['gap_slope'] / step['rate']:+.1%}) | {step['gap_end']:,} | "
            f"{b['batches']} | {_n(b['rows_per_batch'])} | {_pair(b, 'processing_p50_s', 'processing_p95_s')} | "
            f"{_step_verdict(step)} |"
        )
    not_run = (
        "not run: the step before was not sustained, and finished no more than a step below it"
        if sustained.get("stop_rule") == "gaining"
        else "not run: the step before was not sustained"  # runs before 2026-12-07 stopped at the first
    )
    lines += [f"| {rate:,} | | | | | | | | {not_run} |" for rate in sustained["not_run"]]
    rate = sustained["sustained_rate"]
    lines += [
        "",
        caption,
        "",
        f"**Sustained: {rate:,.0f} events/s** (target {SUSTAINED_TARGET:,} events/s)."
        if rate is not None
        else f"**No step was sustained** (target {SUSTAINED_TARGET:,} events/s).",
        ("Freshness rates: given with `--freshness-rates`; " if options["freshness_rates"] else "Freshness rates: ")
        + f"shares of {r['freshness_base_source']}, {r['freshness_base']:,.0f} events/s.",
        f"Producer processes per step: {_producers_per_step(sustained['steps'])}; messages not delivered: "
        f"{sustained['producer_failed']}.",
        "",
        "### Freshness: send -> visible in Silver (Delta commit)",
        "",
        "| rate (events/s) | share | events | p50 s | p95 s | p99 s | max s | backlog slope | producer lateness max s "
        "| gates |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in r["freshness"]:
        f, v = run["freshness"], run["verdict"]
        share = "-" if run.get("share_of_base") is None else f"{run['share_of_base']:.0%}"
        lines.append(
            f"| {run['rate']:,} | {share} | {f['events']:,} | {_s(f['p50_s'])} | {_s(f['p95_s'])} | {_s(f['p99_s'])} | "
            f"{_s(f['max_s'])} | {v['gap_slope']:+,.0f} ({v['gap_slope'] / run['rate']:+.1%}) | "
            f"{_s(run['producer']['max_lateness_s'], 2)} | {'passed' if run['gates']['passed'] else '**FAILED**'} |"
        )
    serving = r["serving_freshness"]
    if serving["measured"]:
        lines.append(
            f"| produce -> serving.order_revenue_5min, {serving['rate']:,} | | {serving['orders']:,} placed orders "
            f"({serving['missing']:,} missing) | {_s(serving['p50_s'])} | {_s(serving['p95_s'])} | "
            f"{_s(serving['p99_s'])} | {_s(serving['max_s'])} | | | "
            f"{'passed' if not serving['missing'] else '**FAILED**'} |"
        )
    else:
        lines.append(f"| produce -> serving.order_revenue_5min | | {serving['reason']} | | | | | | | |")
    lines += [
        "",
        f"Target: p95 <= {FRESHNESS_P95_TARGET_S:g} s (Silver); p95 <= {SERVING_P95_TARGET_S:g} s "
        "(`serving.order_revenue_5min`).",
        "",
        "### Micro-batches (freshness runs, measured time)",
        "",
        "| rate (events/s) | batches | rows / batch | processing p50 / p95 / max s | batch start -> Silver commit "
        "p50 / p95 s | between Silver commits of a query p50 / p95 s |",
        "|---|---|---|---|---|---|",
    ]
    for run in r["freshness"]:
        b = run["batches"]
        lines.append(
            f"| {run['rate']:,} | {b['batches']} | {_n(b['rows_per_batch'])} | "
            f"{_pair(b, 'processing_p50_s', 'processing_p95_s', 'processing_max_s')} | "
            f"{_pair(b, 'start_to_silver_commit_p50_s', 'start_to_silver_commit_p95_s')} | "
            f"{_pair(b, 'silver_commit_interval_p50_s', 'silver_commit_interval_p95_s')} |"
        )
    lines += _phase_table(r["freshness"])
    lines += _cpu_table(r)
    ceiling = r.get("ceiling")
    if ceiling:
        lines += [
            "",
            "### Per-row ceiling",
            "",
            "| what | messages | s | events/s |",
            "|---|---|---|---|",
            f"| classify + parse + quality rules, Kafka read included, no-op sink | {ceiling['messages']:,} | "
            f"{ceiling['rules_s']:.2f} | {_n(ceiling['events_per_s'])} |",
            f"| the Kafka read alone | {ceiling['messages']:,} | {ceiling['kafka_read_s']:.2f} | "
            f"{_n(ceiling['messages'] / ceiling['kafka_read_s'] if ceiling['kafka_read_s'] else None)} |",
        ]
        if ceiling.get("cached_rules_s"):
            lines.append(
                f"| classify + parse + quality rules on the messages cached in memory (no Kafka read), no-op sink | "
                f"{ceiling['messages']:,} | {ceiling['cached_rules_s']:.2f} | "
                f"{_n(ceiling['messages'] / ceiling['cached_rules_s'])} |"
            )
    if r.get("state"):
        lines += _state_lines(r["state"], r["freshness_base"])
    lines += [
        "",
        "### Correctness gates",
        "",
        "| rate (events/s) | messages | Silver: expected / found / missing / unexpected / not at a copy / repeated "
        "| quarantine: expected / found / missing / unexpected / repeated | dead letters: the same "
        "| whole Silver tables: keys held twice | drained | passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in r["freshness"]:
        g = run["gates"]
        lines.append(
            f"| {run['rate']:,} | {g['messages']:,} | {_gate_cells(g['silver'])} | {_gate_cells(g['quarantine'])} | "
            f"{_gate_cells(g['dead_letters'])} | {sum(g['silver_duplicates'].values()):,} | "
            f"{'yes' if g['drained'] else '**no**'} | {'yes' if g['passed'] else '**no**'} |"
        )
    prefill = r["prefill"]
    lines += [
        "",
        f"Prefill: {sum(prefill['rows'].values()):,} rows over {prefill['days']} days up to {prefill['last_day']} "
        f"({prefill['seconds']:.0f} s, untimed).",
        "",
        *protocol(options),
    ]
    return lines
