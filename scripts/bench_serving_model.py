"""The sentiment model over REST for ``make bench``: one-text requests from 50 concurrent clients (latency) and
1,000-text requests (throughput), side by side against

* ``model-server``: the stack's server as shipped (``lakehouse.ml.serving`` on uvicorn, one worker: ``POST
  /predict`` straight to its handler, the rest through FastAPI; the scikit-learn pipeline in memory; requests that
  wait while the model is busy predicted in one call);
* ``model-server, no batching``: the same app predicting each request alone (``batch_texts=1``);
* ``model-server, all through FastAPI``: the same app with ``/predict`` routed by FastAPI like the other paths;
* ``mlflow models serve``: MLflow's own scoring server (``mlflow.pyfunc.scoring_server`` on uvicorn, one worker,
  ``--env-manager local``) serving the same version;

and, in this process, the cost of one text's prediction through each loader (``mlflow.sklearn`` with and without
scikit-learn's input checks, ``mlflow.pyfunc``). The model: TF-IDF (words and word pairs) + logistic regression
fitted on 20,000 generated reviews, registered and promoted on the bench stack's MLflow server.

Clients are closed-loop (each sends its next request when the last is answered), hand-written HTTP/1.1 over
keep-alive connections on uvloop in this process, so that the client costs a few tens of microseconds a request.
Only requests sent after the warm-up are counted.

    python -m lakehouse.scripts.bench model_serving            # on the bench stack (PostgreSQL, MLflow)
    python -m lakehouse.scripts.bench model_serving --serving-seconds 10
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lakehouse.config.settings import Settings
from lakehouse.scripts.errors import BenchError
from lakehouse.scripts.process import Service, require_free_port, wait_until

APP_FACTORY = "lakehouse.ml.serving:create_app"
# the variants of the model server measured beside it: name -> app factory of this module
VARIANTS = {"model-server, no batching": "unbatched_app", "model-server, all through FastAPI": "fastapi_app"}
CLIENTS = 50
BATCH_TEXTS = 1000
BATCH_CLIENTS = 2
TRAIN_TEXTS = 20_000
# targets of issue 17 (item 5)
TARGET_P95_MS = 20.0
TARGET_TEXTS_PER_S = 2000.0
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def unbatched_app() -> Any:
    """The model server's app predicting each request alone (uvicorn ``--factory``)."""
    from lakehouse.ml.serving import create_app

    return create_app(batch_texts=1)


def fastapi_app() -> Any:
    """The model server's FastAPI app alone: ``/predict`` through FastAPI's routing (uvicorn ``--factory``)."""
    from lakehouse.ml.serving import create_app

    return create_app().api


def review_texts(seed: int, count: int) -> tuple[list[str], list[str]]:
    """``count`` generated review texts and the labels of their ratings."""
    from lakehouse.kafka.generator import read_reference
    from lakehouse.kafka.generator.review_text import sample_reviews

    reviews = sample_reviews(seed, count, read_reference("products"))
    return [r.text for r in reviews], [r.label for r in reviews]


def register_champion(settings: Settings) -> tuple[str, Any]:
    """Train the training job's pipeline on generated reviews, register it as a new version of
    ``mlflow.model_name`` and give it the champion alias; its version and the pipeline."""
    from lakehouse.config.ml import sentiment_spec
    from lakehouse.ml import registry

    texts, labels = review_texts(17, TRAIN_TEXTS)
    candidate, trained = registry.register_fitted(
        settings.mlflow, sentiment_spec(), texts, labels, f"bench {time.time_ns()}"
    )
    client = registry.connect(settings.mlflow)
    current = registry.champion_version(client, settings.mlflow)
    registry.move_champion(client, settings.mlflow, candidate.version, current)
    return candidate.version, trained.model


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of latencies in seconds, in milliseconds (nearest rank)."""
    if not latencies:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    ordered = sorted(latencies)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))] * 1000, 2)

    return {"p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99), "max_ms": round(ordered[-1] * 1000, 2)}


async def _client(
    port: int, path: str, bodies: Iterator[bytes], warm_until: float, until: float, latencies: list[float]
) -> int:
    """One closed-loop client on a keep-alive connection; the number of answers that were not 200."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    failed = 0
    try:
        while (started := time.perf_counter()) < until:
            body = next(bodies)
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            if length is None:
                raise BenchError(f"an answer without Content-Length from port {port}: {head[:200]!r}")
            await reader.readexactly(int(length.group(1)))
            if started >= warm_until:
                latencies.append(time.perf_counter() - started)
                failed += head[9:12] != b"200"
    finally:
        writer.close()
    return failed


def load(port: int, path: str, bodies: list[bytes], clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    """``clients`` closed-loop clients posting ``bodies`` (in turn) for ``warmup + seconds``; what was measured
    after the warm-up."""
    import uvloop

    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []
        cycle = itertools.cycle(bodies)
        now = time.perf_counter()
        failed = await asyncio.gather(
            *(_client(port, path, cycle, now + warmup, now + warmup + seconds, latencies) for _ in range(clients))
        )
        return latencies, sum(failed)

    latencies, failed = uvloop.run(run())
    return {"requests": len(latencies), "per_s": round(len(latencies) / seconds, 1), "failed": failed,
            **percentiles(latencies)}  # fmt: skip


def _bodies(texts: list[str], per_request: int, key: str) -> list[bytes]:
    rng = random.Random(5)
    count = 200 if per_request == 1 else 8
    return [json.dumps({key: rng.sample(texts, per_request)}).encode() for _ in range(count)]


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of the process ``pid`` and its descendants so far."""
    import psutil

    process = psutil.Process(pid)
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        times = each.cpu_times()
        total += times.user + times.system
    return total


def bench_server(port: int, pid: int, key: str, path: str, texts: list[str], seconds: float) -> dict[str, Any]:
    """One text per request from ``CLIENTS`` clients, then ``BATCH_TEXTS`` per request from ``BATCH_CLIENTS``; with
    the server's CPU time per request (``pid``: its process), which other load on the machine disturbs less than
    latency."""
    measured = {}
    for case, per_request, clients in (("single", 1, CLIENTS), ("batch", BATCH_TEXTS, BATCH_CLIENTS)):
        before = cpu_seconds(pid)
        result = load(port, path, _bodies(texts, per_request, key), clients, seconds, warmup=3)
        answered = result["requests"] * (seconds + 3) / seconds  # the warm-up's requests used CPU too
        result["server_cpu_ms_per_request"] = round((cpu_seconds(pid) - before) * 1000 / max(answered, 1), 3)
        measured[case] = result
    measured["batch"]["texts_per_s"] = round(measured["batch"]["per_s"] * BATCH_TEXTS)
    return measured


def in_process(model_uri: str, texts: list[str], calls: int = 2000) -> dict[str, dict[str, float]]:
    """One text's prediction through each loader, ``calls`` times each, interleaved; latencies in ms."""
    import mlflow.pyfunc
    import mlflow.sklearn
    import sklearn

    from lakehouse.ml.training import model_input

    pipeline = mlflow.sklearn.load_model(model_uri)
    pyfunc = mlflow.pyfunc.load_model(model_uri)

    def unchecked(text: list[str]) -> Any:
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return pipeline.predict_proba(text)

    ways: dict[str, Callable[[list[str]], Any]] = {
        "mlflow.sklearn, checks skipped (served)": unchecked,
        "mlflow.sklearn": pipeline.predict_proba,
        "mlflow.pyfunc": lambda text: pyfunc.predict(model_input(text)),  # its signature: a 1-D array of strings
    }
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for n in range(calls):
        for name, predict in ways.items():
            started = time.perf_counter()
            predict([texts[n % len(texts)]])
            timings[name].append(time.perf_counter() - started)
    return {name: {k: v for k, v in percentiles(values).items() if k in ("p50_ms", "p95_ms")}
            for name, values in timings.items()}  # fmt: skip


def _pid(service: Service) -> int:
    pid = service.pid()
    if pid is None:
        raise BenchError(f"{service.name} is not running; see {service.log_file}")
    return pid


def _start(service: Service, argv: list[str], port: int, env: dict[str, str], ready_path: str) -> None:
    import urllib.request

    require_free_port(port, f"the benchmark's {service.name}", "LAKEHOUSE_BENCH_MODEL_SERVER_PORT")
    service.start(argv, env=env)

    def answers() -> bool:
        if service.pid() is None:
            raise BenchError(f"{service.name} exited during start-up; see {service.log_file}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=3) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until(answers, 240, service.name, service.log_file)


def bench_model_serving(settings: Settings, seconds: float) -> dict[str, Any]:
    """Register a champion on the stack's MLflow server and measure each server, one after another."""
    from lakehouse.scripts.model_server import ModelServer

    if settings.model_serving is None:
        raise BenchError(f"environment {settings.name!r} has no model_serving section")
    version, _ = register_champion(settings)
    texts, _ = review_texts(99, 5000)
    server = ModelServer(settings)
    server.stop()  # a server of an earlier run would serve its version until its next reload
    server.start()
    env = {**server.env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = settings.home / "run"
    results: dict[str, Any] = {"model": settings.mlflow.model_name, "version": version, "seconds": seconds}
    results.update(clients=CLIENTS, batch_texts=BATCH_TEXTS, batch_clients=BATCH_CLIENTS)
    servers: dict[str, Any] = {}
    try:
        print("  model-server", flush=True)
        servers["model-server"] = bench_server(server.port, _pid(server.service), "texts", "/predict", texts, seconds)
        for offset, (name, factory) in enumerate(VARIANTS.items(), start=1):
            variant = Service(f"bench-model-server-{offset}", run)
            argv = server.argv()
            argv[argv.index(APP_FACTORY)] = f"{__name__}:{factory}"
            argv[argv.index("--port") + 1] = str(server.port + offset)
            print(f"  {name}", flush=True)
            _start(variant, argv, server.port + offset, env, "/health")
            try:
                servers[name] = bench_server(server.port + offset, _pid(variant), "texts", "/predict", texts, seconds)
            finally:
                variant.stop()
        scoring = Service("bench-mlflow-models-serve", run)
        uri = f"models:/{settings.mlflow.model_name}/{version}"
        mlflow_cli = str(Path(sys.executable).parent / "mlflow")
        port = server.port + len(VARIANTS) + 1
        print("  mlflow models serve", flush=True)
        _start(scoring, [mlflow_cli, "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
                         "-p", str(port), "-w", "1"], port, env, "/ping")  # fmt: skip
        try:
            servers["mlflow models serve"] = bench_server(port, _pid(scoring), "inputs", "/invocations", texts, seconds)
        finally:
            scoring.stop()
        print("  in process", flush=True)
        results["in_process"] = in_process(uri, texts)
    finally:
        server.stop()
    results["servers"] = servers
    return results


def model_serving_section(entry: dict[str, Any] | None, run_line: Callable[[dict[str, Any]], str]) -> list[str]:
    """The section of docs/benchmarks.md (nothing before a first run)."""
    if entry is None:
        return []
    result = entry["result"]
    lines = [
        "",
        "## Model serving: the sentiment model over REST",
        "",
        run_line(entry["run"]),
        "",
        "Reproduce: `python -m lakehouse.scripts.bench model_serving` (this section alone). Each server runs one "
        f"uvicorn worker and serves version {result['version']} of `{result['model']}` (TF-IDF of words and word "
        f"pairs + logistic regression, {TRAIN_TEXTS:,} generated reviews); the clients run on the same 2 cores, "
        f"closed-loop, {result['seconds']:g} s measured after 3 s of warm-up each.",
        "",
        f"| server | 1 text per request, {result['clients']} clients: requests/s | p50 ms | p95 ms | p99 ms | "
        f"server CPU ms / request | {result['batch_texts']:,} texts per request, {result['batch_clients']} clients: "
        "texts/s | p50 ms | p95 ms | server CPU ms / request | not 200 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, measured in result["servers"].items():
        single, batch = measured["single"], measured["batch"]
        lines.append(
            f"| {name} | {single['per_s']:,.0f} | {single['p50_ms']} | **{single['p95_ms']}** | "
            f"{single['p99_ms']} | {single['server_cpu_ms_per_request']} | **{batch['texts_per_s']:,}** | "
            f"{batch['p50_ms']} | {batch['p95_ms']} | {batch['server_cpu_ms_per_request']} | "
            f"{single['failed'] + batch['failed']} |"
        )
    lines += [
        "",
        f"Targets: p95 <= {TARGET_P95_MS:g} ms for one text per request with {result['clients']} clients; "
        f">= {TARGET_TEXTS_PER_S:,.0f} texts/s in batches.",
        "",
        "One text's prediction in one process (no HTTP), by loader:",
        "",
        "| loader | p50 ms | p95 ms |",
        "|---|---|---|",
        *(f"| {name} | {v['p50_ms']} | {v['p95_ms']} |" for name, v in result["in_process"].items()),
    ]
    return lines
