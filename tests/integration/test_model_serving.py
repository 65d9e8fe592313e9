"""The sentiment model over REST (``lakehouse stack up model-server``), against the stack's real MLflow server and
registry: the server starts before any version has the alias ``champion`` (503), serves each version the alias
names within the reload interval, predicts what the registered pipeline predicts, refuses every kind of bad
input with a 4xx naming the problem, describes itself in OpenAPI, and writes the latency of each window of its
requests into serving.ml_serving_latency (its own window: one second)."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
import uuid
from array import array
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row

from lakehouse.config.settings import MlflowSettings, Settings, settings
from lakehouse.kafka.generator import read_reference
from lakehouse.kafka.generator.review_text import sample_reviews
from lakehouse.ml.sentiment import CLASSES
from tests.integration.test_postgres_roles import login_role

pytestmark = pytest.mark.integration
RELOAD_SECONDS = 1
# a promotion is served after at most one reload interval, plus the time to download and load the version
PICKED_UP_WITHIN = RELOAD_SECONDS + 10
LATENCY_WINDOW_SECONDS = 1
DOCS_ML = Path(__file__).resolve().parents[2] / "docs" / "ml.md"


def reviews(seed: int, count: int) -> tuple[list[str], list[str]]:
    """``count`` generated review texts and the labels of their ratings."""
    corpus = sample_reviews(seed, count, read_reference("products"))
    return [r.text for r in corpus], [r.label for r in corpus]


@dataclass
class Served:
    """The registered model's name, its versions' pipelines and run ids, the server's URL and what the server
    answered on /health right after it started."""

    name: str
    models: dict[str, Any]
    run_ids: dict[str, str]
    url: str
    first_health: httpx.Response
    tracking_uri: str
    http: httpx.Client

    def promote(self, version: str | None) -> float:
        """Point the alias at ``version`` (None: remove it); seconds until the server serves it."""
        from mlflow import MlflowClient

        registry = MlflowClient(self.tracking_uri)
        started = time.monotonic()
        if version is None:
            registry.delete_registered_model_alias(self.name, "champion")
        else:
            registry.set_registered_model_alias(self.name, "champion", version)
        while time.monotonic() - started < PICKED_UP_WITHIN + 5:
            health = self.http.get("/health")
            if (version is None and health.status_code == 503) or (
                health.status_code == 200 and health.json()["version"] == version
            ):
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"the server did not serve {version!r} within {PICKED_UP_WITHIN + 5}s: {health.text}")


def _register_two_versions(mlflow_settings: MlflowSettings) -> tuple[dict[str, Any], dict[str, str]]:
    """Versions 1 and 2 of the model, the training job's pipeline trained on two different sets of generated
    reviews (so their predictions differ): their pipelines and the runs that logged them."""
    from lakehouse.config.ml import sentiment_spec
    from lakehouse.ml import registry

    models, run_ids = {}, {}
    for version, seed in (("1", 1), ("2", 2)):
        texts, labels = reviews(seed, 400)
        candidate, trained = registry.register_fitted(mlflow_settings, sentiment_spec(), texts, labels, f"v{version}")
        assert candidate.version == version
        models[version], run_ids[version] = trained.model, candidate.run_id
    return models, run_ids


@pytest.fixture(scope="module")
def served(mlflow_stack: Settings) -> Iterator[Served]:
    """Two versions of a tiny TF-IDF + logistic regression pipeline registered under a name of this module (no
    alias yet), and the stack's model server serving that name, reloading every second."""
    from lakehouse.scripts.stack import LocalStack

    name = f"serving_test_{uuid.uuid4().hex[:8]}"
    tracking_uri = mlflow_stack.mlflow.tracking_uri
    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(1) as background:
        patch.setenv("LAKEHOUSE_MLFLOW_MODEL_NAME", name)
        patch.setenv("LAKEHOUSE_MODEL_RELOAD_SECONDS", str(RELOAD_SECONDS))
        patch.setenv("LAKEHOUSE_MODEL_LATENCY_WINDOW_SECONDS", str(LATENCY_WINDOW_SECONDS))
        settings.cache_clear()
        stack = LocalStack(settings())
        stack.model_server.stop()  # one a kept test stack left running serves another name
        # the server starts while the versions are registered: none has the alias either way
        starting = background.submit(stack.up, ("model-server",))
        try:
            models, run_ids = _register_two_versions(settings().mlflow)
            starting.result()
            with httpx.Client(base_url=stack.model_server.url, timeout=30) as http:
                first_health = http.get("/health")
                yield Served(name, models, run_ids, stack.model_server.url, first_health, tracking_uri, http)
        finally:
            starting.exception()  # wait for the start before stopping
            stack.model_server.stop()
    settings.cache_clear()


def expected(model: Any, texts: list[str]) -> list[dict[str, Any]]:
    """What /predict should answer for ``texts``, from the pipeline's own class probabilities."""
    probabilities = model.predict_proba(texts)
    out = []
    for row in probabilities:
        p = dict(zip(CLASSES, row.tolist(), strict=True))
        out.append({"label": CLASSES[int(np.argmax(row))], "score": p["positive"] - p["negative"], "probabilities": p})
    return out


def assert_predictions(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [g["label"] for g in got] == [w["label"] for w in want]
    np.testing.assert_allclose([g["score"] for g in got], [w["score"] for w in want], atol=2e-6)
    for g, w in zip(got, want, strict=True):
        assert list(g["probabilities"]) == list(CLASSES)
        np.testing.assert_allclose(list(g["probabilities"].values()), list(w["probabilities"].values()), atol=2e-6)


def test_the_server_starts_without_a_champion_and_follows_the_alias(served: Served) -> None:
    # started before any version had the alias: up, but nothing to serve, and it says so
    assert served.first_health.status_code == 503
    assert f"no version of model {served.name!r} has the alias 'champion'" in served.first_health.json()["detail"]
    http = served.http
    refused = http.post("/predict", json={"texts": ["Great sound."]})
    assert refused.status_code == 503 and "no model to serve" in refused.json()["detail"]

    for version in ("1", "2"):
        assert served.promote(version) <= PICKED_UP_WITHIN
        assert http.get("/health").json() == {
            "status": "ok",
            "model": served.name,
            "alias": "champion",
            "version": version,
            "run_id": served.run_ids[version],
        }
        texts, _ = reviews(7, 20)
        answer = http.post("/predict", json={"texts": texts}).json()
        assert (answer["model"], answer["version"]) == (served.name, version)
        assert_predictions(answer["predictions"], expected(served.models[version], texts))

    # the alias removed: the server stops serving the version it no longer names
    assert served.promote(None) <= PICKED_UP_WITHIN
    assert http.post("/predict", json={"texts": ["Great sound."]}).status_code == 503


def test_predictions_are_the_registered_pipelines_in_the_order_of_the_texts(served: Served) -> None:
    served.promote("1")
    texts, labels = reviews(11, 300)
    texts += ["  Ünïcödé: le son est génial 🎧  ", "x" * 10_000, "not bad", "\u0000 odd \ufffd bytes"]
    model = served.models["1"]
    http = served.http
    answer = http.post("/predict", json={"texts": texts})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert_predictions(answer.json()["predictions"], expected(model, texts))
    # the model learned something: most generated reviews get the label of their rating
    predicted = [p["label"] for p in answer.json()["predictions"][: len(labels)]]
    assert np.mean(np.array(predicted) == np.array(labels)) > 0.6

    # concurrent one-text requests are predicted together: each still gets its own text's prediction
    def one(text: str) -> dict[str, Any]:
        response = http.post("/predict", json={"texts": [text]})
        assert response.status_code == 200
        return response.json()["predictions"][0]

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(one, texts[:120]))
    assert_predictions(got, expected(model, texts[:120]))


BAD_INPUT = {
    "an empty text": ({"json": {"texts": ["fine", ""]}}, 422, ["texts[1]", "at least 1 character"]),
    "a text of only whitespace": ({"json": {"texts": [" \n\t "]}}, 422, ["texts[0]", "empty or only whitespace"]),
    "a text over 10,000 characters": ({"json": {"texts": ["y" * 10_001]}}, 422, ["texts[0]", "at most 10000"]),
    "over 1,000 texts": ({"json": {"texts": ["ok"] * 1001}}, 422, ["texts", "at most 1000 items"]),
    "no texts": ({"json": {"texts": []}}, 422, ["texts", "at least 1 item"]),
    "texts that are no strings": ({"json": {"texts": ["ok", 5, None]}}, 422, ["texts[1]", "texts[2]", "valid string"]),
    "texts not a list": ({"json": {"texts": "one review"}}, 422, ["texts", "valid array"]),
    "no texts field": ({"json": {"text": ["ok"]}}, 422, ["texts is missing", "text: unknown field"]),
    "a list instead of an object": ({"json": ["ok"]}, 422, ["not a JSON object", '{"texts"']),
    "not JSON": (
        {"content": b"texts=great", "headers": {"content-type": "application/json"}},
        400,
        ["not valid JSON", "Content-Type: application/json"],
    ),
    "truncated JSON": (
        {"content": b'{"texts": ["great"', "headers": {"content-type": "application/json"}},
        400,
        ["not valid JSON"],
    ),
    "not UTF-8": (
        {"content": b'{"texts": ["\xff\xfe"]}', "headers": {"content-type": "application/json"}},
        400,
        ["not valid JSON", "UTF-8"],
    ),
    "JSON nested too deep": (
        {"content": b"[" * 100_000 + b"]" * 100_000, "headers": {"content-type": "application/json"}},
        400,
        ["not valid JSON"],
    ),
    "a lone surrogate": (
        {"content": b'{"texts": ["\\ud800 great"]}', "headers": {"content-type": "application/json"}},
        400,
        ["not valid JSON"],
    ),
    "no body": ({"headers": {"content-type": "application/json"}}, 400, ["the body is empty"]),
    "a text/plain body": (
        {"content": b"great product", "headers": {"content-type": "text/plain"}},
        415,
        ["declared as JSON", "Content-Type: application/json"],
    ),
    "no Content-Type": ({"content": b'{"texts": ["great"]}'}, 415, ["declared as JSON"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_gets_a_4xx_that_names_the_problem(served: Served, case: str) -> None:
    served.promote("1")
    request, status, phrases = BAD_INPUT[case]
    http = served.http
    response = http.post("/predict", **request)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert all(phrase in detail for phrase in phrases), detail
    assert len(detail) < 2000  # named, not echoed: a refused 10,000-character text is not sent back


def test_other_methods_and_paths_get_a_4xx(served: Served) -> None:
    assert served.http.get("/predict").status_code == 405
    assert served.http.post("/health", json={}).status_code == 405
    assert served.http.post("/predict/", json={"texts": ["ok"]}).status_code in (307, 404)
    assert served.http.get("/nothing").status_code == 404


def test_the_openapi_description_lists_predict_and_health(served: Served) -> None:
    http = served.http
    spec = http.get("/openapi.json").json()
    assert http.get("/docs").status_code == 200
    assert set(spec["paths"]) == {"/predict", "/health"}
    assert set(spec["paths"]["/predict"]) == {"post"} and set(spec["paths"]["/health"]) == {"get"}
    body = spec["paths"]["/predict"]["post"]["requestBody"]
    texts = body["content"]["application/json"]["schema"]["properties"]["texts"]
    assert (texts["minItems"], texts["maxItems"]) == (1, 1000)
    assert (texts["items"]["minLength"], texts["items"]["maxLength"]) == (1, 10_000)
    assert {"200", "400", "413", "415", "422", "503"} <= set(spec["paths"]["/predict"]["post"]["responses"])
    assert spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictResponse"
    }


@dataclass(frozen=True)
class Sent:
    """One request as the client saw it: when it was sent and answered (epoch seconds), its latency, status and
    texts."""

    sent: float
    answered: float
    latency_ms: float
    status: int
    texts: int

    @property
    def window(self) -> int:
        """The window it was sent in (the server counts it in the window its answer was ready in, in between)."""
        return math.floor(self.sent / LATENCY_WINDOW_SECONDS)


def _nearest_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[(percent * len(ordered) + 99) // 100 - 1]


def _latency_rows(dsn: str, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(
            f"SELECT * FROM serving.ml_serving_latency WHERE {where} ORDER BY window_start, model_version".encode(),
            params,
        ).fetchall()


def _wait_for_requests(dsn: str, model_name: str, since: float, requests: int) -> list[dict[str, Any]]:
    """The latency rows of ``model_name`` from the window starting at ``since`` (epoch seconds) on, once they
    count ``requests``."""
    deadline = time.monotonic() + LATENCY_WINDOW_SECONDS + 15
    while True:
        rows = _latency_rows(dsn, "model_name = %s AND window_start >= to_timestamp(%s)", (model_name, since))
        if sum(row["requests"] for row in rows) >= requests:
            return rows
        assert time.monotonic() < deadline, f"{requests} requests sent, rows: {rows}"
        time.sleep(0.2)


def _sleep_until_next_window() -> None:
    time.sleep(LATENCY_WINDOW_SECONDS - time.time() % LATENCY_WINDOW_SECONDS + 0.02)


def test_each_window_s_latency_lands_in_postgres_with_its_requests_texts_and_version(
    served: Served, unique: str
) -> None:
    served.promote("1")
    texts, _ = reviews(23, 60)
    bodies = [({"json": {"texts": texts[n : n + 1 + n % 3]}}, 200) for n in range(0, 60)]
    bodies[5::10] = [({"json": {"texts": [""]}}, 422)] * 6
    bodies[7::20] = [({"content": b"{}", "headers": {"content-type": "text/plain"}}, 415)] * 3
    sent: list[Sent] = []
    _sleep_until_next_window()  # the requests of the tests before are in windows of their own
    first_window = math.floor(time.time() / LATENCY_WINDOW_SECONDS)
    for number, (request, status) in enumerate(bodies):
        # no request straddles a window's end, and they take three windows at least
        if number in (20, 40) or time.time() % LATENCY_WINDOW_SECONDS > LATENCY_WINDOW_SECONDS * 0.6:
            _sleep_until_next_window()
        sent_at, started = time.time(), time.perf_counter()
        answer = served.http.post("/predict", **request)
        latency_ms, answered_at = (time.perf_counter() - started) * 1000, time.time()
        assert answer.status_code == status, answer.text
        sent.append(
            Sent(sent_at, answered_at, latency_ms, status, len(request["json"]["texts"]) if status == 200 else 0)
        )
    straddling = [s for s in sent if math.floor(s.answered / LATENCY_WINDOW_SECONDS) != s.window]
    assert not straddling, f"requests slower than {LATENCY_WINDOW_SECONDS * 0.4} s: {straddling}"

    rows = _wait_for_requests(settings().postgres_dsn(), served.name, first_window * LATENCY_WINDOW_SECONDS, len(sent))

    by_window: dict[int, list[Sent]] = {}
    for one in sent:
        by_window.setdefault(one.window, []).append(one)
    assert len(by_window) >= 3
    assert [math.floor(row["window_start"].timestamp() / LATENCY_WINDOW_SECONDS) for row in rows] == sorted(by_window)
    port = served.url.rsplit(":", 1)[1]
    for row in rows:
        window = by_window[math.floor(row["window_start"].timestamp() / LATENCY_WINDOW_SECONDS)]
        succeeded = [s.latency_ms for s in window if s.status == 200]
        assert row["server"].startswith(f"{socket.gethostname()}:{port}/")
        assert (row["model_name"], row["model_version"]) == (served.name, "1")
        assert (row["window_end"] - row["window_start"]).total_seconds() == LATENCY_WINDOW_SECONDS
        assert row["requests"] == len(window)
        assert row["texts"] == sum(s.texts for s in window)
        assert row["errors_4xx"] == sum(1 for s in window if 400 <= s.status < 500)
        assert row["errors_5xx"] == 0
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
        # each request's server-side latency is part of the client's, so each percentile is at most the client's
        for percent in (50, 95, 99):
            assert row[f"p{percent}_ms"] <= _nearest_rank(succeeded, percent), (percent, row, succeeded)
        assert row["max_ms"] <= max(succeeded)
    assert sum(row["requests"] for row in rows) == len(bodies)
    assert sum(row["texts"] for row in rows) == sum(len(r["json"]["texts"]) for r, status in bodies if status == 200)

    # BI reads them with the query docs/ml.md gives
    query = DOCS_ML.read_text().split("## Monitoring: REST latency", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    with (
        psycopg.connect(settings().postgres_dsn(), autocommit=True) as admin,
        login_role(admin, settings(), "bi_reader", unique) as reader,
        psycopg.connect(reader, row_factory=dict_row) as conn,
    ):
        read = [r for r in conn.execute(query.encode()).fetchall() if r["model_name"] == served.name]
    read = read[-len(rows) :]
    assert [(r["window_start"], r["requests"], r["texts"]) for r in read] == [
        (r["window_start"], r["requests"], r["texts"]) for r in rows
    ]
    for got, row in zip(read, rows, strict=True):
        assert float(got["p95_ms"]) == pytest.approx(row["p95_ms"], abs=0.006)
        assert float(got["error_pct"]) == pytest.approx(100 * row["errors_4xx"] / row["requests"], abs=0.06)


def test_the_partial_window_is_written_when_the_app_stops(served: Served) -> None:
    from lakehouse.ml.serving import create_app

    served.promote("1")
    current = settings()
    assert current.model_serving is not None
    hour_windows = current.model_copy(
        update={"model_serving": current.model_serving.model_copy(update={"latency_window_seconds": 3600})}
    )
    app = create_app(hour_windows)
    texts, _ = reviews(29, 5)

    async def serve_then_stop() -> tuple[float, float]:
        async with app.api.router.lifespan_context(app.api):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
                started = time.time()
                for text in texts:
                    assert (await client.post("/predict", json={"texts": [text, text]})).status_code == 200
                assert (await client.post("/predict", json={"texts": []})).status_code == 422
        return started, time.time()

    started, stopped = asyncio.run(serve_then_stop())

    # this process served them: its own server name, and a window of an hour that ended when the app stopped
    server = f"{socket.gethostname()}:{current.model_serving.address[1]}/{os.getpid()}"
    rows = _latency_rows(current.postgres_dsn(), "server = %s AND window_end >= to_timestamp(%s)", (server, started))
    assert [(r["model_version"], r["requests"], r["texts"], r["errors_4xx"]) for r in rows] == [("1", 6, 10, 1)]
    assert rows[0]["window_end"].timestamp() <= stopped
    assert (rows[0]["window_end"] - rows[0]["window_start"]).total_seconds() < 3600


def test_a_window_is_kept_until_it_can_be_written_and_writing_it_again_replaces_it(
    postgres_stack: Settings, unique: str
) -> None:
    from lakehouse.ml.latency import LatencyMonitor, LatencyRecorder, VersionTally, Window
    from lakehouse.postgres.migrate import migrate
    from lakehouse.scripts.postgres_server import ensure_database

    database = f"lakehouse_latency_{unique}"
    admin = postgres_stack.postgres_dsn("postgres")
    ensure_database(admin, database)
    dsn = postgres_stack.postgres_dsn(database)
    monitor = LatencyMonitor(LatencyRecorder(), dsn, "host:5001/7", "m")
    window = Window(1_800_000_000.0, 1_800_000_060.0, {"4": VersionTally(array("q", [2_000_000]), requests=3, texts=9,
                                                                          errors_4xx=1, errors_5xx=1)})  # fmt: skip
    try:
        assert monitor.write([window]) is False  # not migrated: no table yet
        migrate(dsn)
        assert monitor.write([]) is True
        assert monitor.write([window]) is True  # again: replaces its row
        rows = _latency_rows(dsn, "true", ())
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'.encode())

    assert [(r["server"], r["model_version"], r["requests"], r["texts"], r["errors_4xx"], r["errors_5xx"])
            for r in rows] == [("host:5001/7", "4", 3, 9, 1, 1)]  # fmt: skip
    assert (rows[0]["p50_ms"], rows[0]["p95_ms"], rows[0]["p99_ms"], rows[0]["max_ms"]) == (2.0, 2.0, 2.0, 2.0)
    assert rows[0]["window_start"].timestamp() == 1_800_000_000.0
