"""The model server's configuration per environment, its command line, and how it batches the requests that wait
while the model is busy (a small pipeline in this process; tests/integration/test_model_serving.py serves one from
the registry over HTTP)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from lakehouse.config.settings import MlflowSettings, load_settings
from lakehouse.ml.champion import Batcher, Champion, ChampionWatch, NoChampion
from lakehouse.ml.sentiment import CLASSES
from lakehouse.ml.serving import MAX_BODY_BYTES, Predictor, problems_of
from lakehouse.scripts.model_server import ModelServer
from lakehouse.scripts.stack import LocalStack
from tests.unit.test_mlflow_settings import DATABRICKS_ENVIRONMENT

TEXTS = ["great sound, love it", "awful, it broke", "it is fine I guess", "really great", "terrible fit"] * 4
LABELS = ["positive", "negative", "neutral", "positive", "negative"] * 4


def test_local_and_cluster_serve_the_model_on_this_machine_and_databricks_does_not_yet(tmp_path: Path) -> None:
    for environment in ("local", "cluster"):
        loaded = load_settings(environment, environ={"LAKEHOUSE_HOME": str(tmp_path)})
        assert loaded.model_serving is not None
        assert loaded.model_serving.url == "http://127.0.0.1:5001"
        assert loaded.model_serving.address == ("127.0.0.1", 5001) and loaded.model_serving.on_this_machine
        assert loaded.model_serving.reload_seconds == 30
        assert loaded.model_serving.latency_window_seconds == 60
        assert loaded.mlflow.model_name == "lakehouse_sentiment"

    moved = load_settings(
        "local",
        environ={
            "LAKEHOUSE_HOME": str(tmp_path),
            "LAKEHOUSE_MODEL_SERVER_PORT": "45051",
            "LAKEHOUSE_MODEL_RELOAD_SECONDS": "2.5",
            "LAKEHOUSE_MODEL_LATENCY_WINDOW_SECONDS": "1",
            "LAKEHOUSE_MLFLOW_MODEL_NAME": "other_model",
        },
    )
    assert moved.model_serving is not None and moved.model_serving.address == ("127.0.0.1", 45051)
    assert moved.model_serving.reload_seconds == 2.5 and moved.mlflow.model_name == "other_model"
    assert moved.model_serving.latency_window_seconds == 1

    assert load_settings("databricks", environ=DATABRICKS_ENVIRONMENT).model_serving is None


def test_the_stack_runs_uvicorn_from_this_venv_and_exports_its_url(tmp_path: Path) -> None:
    environ = {
        "LAKEHOUSE_HOME": str(tmp_path),
        "LAKEHOUSE_MODEL_SERVER_PORT": "45051",
        "LAKEHOUSE_MLFLOW_PORT": "45050",
    }
    loaded = load_settings("local", environ=environ)
    server = ModelServer(loaded)
    argv = server.argv()
    assert argv[:5] == [argv[0], "-m", "uvicorn", "--factory", "lakehouse.ml.serving:create_app"]
    assert argv[argv.index("--port") + 1] == "45051" and argv[argv.index("--host") + 1] == "127.0.0.1"
    assert server.configured and server.service.log_file == tmp_path / "run" / "model-server.log"
    assert server.env()["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:45050"
    assert "export LAKEHOUSE_MODEL_SERVER_URL=http://127.0.0.1:45051" in LocalStack(loaded).env_exports().splitlines()

    assert not ModelServer(load_settings("databricks", environ=DATABRICKS_ENVIRONMENT)).configured


class CountingModel:
    """A fitted pipeline that counts the calls of ``predict_proba`` and the texts of each."""

    def __init__(self) -> None:
        self.pipeline = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, LABELS)
        self.classes_ = self.pipeline.classes_
        self.calls: list[int] = []

    def predict_proba(self, texts: list[str]) -> Any:
        self.calls.append(len(texts))
        if "boom" in texts:
            raise ValueError("the model cannot take 'boom'")
        return self.pipeline.predict_proba(texts)


def _watch(model: CountingModel | None) -> ChampionWatch:
    watch = ChampionWatch(MlflowSettings(tracking_uri="https://mlflow.internal", model_name="m"), 30)
    if model is not None:
        watch.champion = Champion("m", "champion", "3", "run", model)
    return watch


def test_requests_that_wait_while_the_model_is_busy_are_predicted_in_one_call() -> None:
    model = CountingModel()
    batcher = Batcher(_watch(model), max_texts=8)

    async def clients() -> list[tuple[Champion, Any]]:
        return await asyncio.gather(*(batcher.predict([text]) for text in TEXTS))

    answers = asyncio.run(clients())
    batcher.close()

    # the requests that arrived together go in calls of at most 8 texts, not one call each
    assert model.calls == [8, 8, 4]
    expected = model.pipeline.predict_proba(TEXTS)
    assert all(len(predictions) == 1 for _, predictions in answers)
    got = [list(predictions[0]["probabilities"].values()) for _, predictions in answers]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [predictions[0]["label"] for _, predictions in answers] == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert {champion.version for champion, _ in answers} == {"3"}


def test_a_request_that_breaks_the_model_fails_alone() -> None:
    model = CountingModel()
    batcher = Batcher(_watch(model))

    async def clients() -> list[Any]:
        return await asyncio.gather(
            batcher.predict(["first"]),
            batcher.predict(["great"]),
            batcher.predict(["boom"]),
            batcher.predict(["awful", "fine"]),
            return_exceptions=True,
        )

    first, good, bad, two = asyncio.run(clients())
    batcher.close()

    assert isinstance(bad, ValueError)
    assert (len(first[1]), len(good[1]), len(two[1])) == (1, 1, 2)
    # the call of all four requests failed, then each was predicted alone
    assert model.calls == [5, 1, 1, 1, 2]


def test_without_a_champion_a_request_is_refused_at_once_saying_why() -> None:
    batcher = Batcher(_watch(None))
    with pytest.raises(NoChampion, match=r"no version of model 'm' has the alias 'champion' yet.*every 30 s"):
        asyncio.run(batcher.predict(["great"]))
    batcher.close()


def test_refusals_name_each_problem_without_echoing_the_input() -> None:
    errors = [
        {"type": "string_too_long", "loc": ("texts", 3), "msg": "String should have at most 10000 characters"},
        {"type": "extra_forbidden", "loc": ("text",), "msg": "Extra inputs are not permitted"},
    ]
    assert problems_of(errors, b"{}") == (
        422,
        "texts[3]: String should have at most 10000 characters; text: unknown field (a request has only texts)",
    )
    invalid = [{"type": "json_invalid", "loc": (), "msg": "Invalid JSON: EOF while parsing a list at line 1 column 9"}]
    status, detail = problems_of(invalid, b'{"texts":')
    assert status == 400 and detail.startswith(
        "the body is not valid JSON (EOF while parsing a list at line 1 column 9)"
    )
    assert problems_of(invalid, b"  ")[1].startswith("the body is empty")
    assert problems_of(invalid, b'{"texts": ["\xff"]}')[1].startswith("the body is not valid JSON (it is not UTF-8)")
    many = [{"type": "string_type", "loc": ("texts", n), "msg": "not a string"} for n in range(25)]
    assert problems_of(many, b"{}")[1].endswith("; and 15 more")


def test_a_request_is_checked_in_order_content_type_size_json_then_the_champion() -> None:
    watch = _watch(None)
    predictor = Predictor(watch, Batcher(watch))

    def answer(content_type: str, body: bytes) -> tuple[int, str]:
        got = asyncio.run(predictor.answer(content_type, body))
        return got.status, json.loads(got.body)["detail"]

    assert answer("text/plain", b'{"texts": ["ok"]}')[0] == 415
    assert answer("application/json", b" " * (MAX_BODY_BYTES + 1)) == (
        413,
        "the body is over 64 MiB: send at most 1000 texts",
    )
    assert answer("application/json; charset=utf-8", b'{"texts": []}') == (
        422,
        "texts: List should have at least 1 item after validation, not 0",
    )
    status, detail = answer("application/vnd.api+json", b'{"texts": ["ok"]}')
    assert status == 503 and detail.startswith("no model to serve")
    assert asyncio.run(predictor.answer("application/json", b'{"texts": ["ok"]}')).headers == ((b"retry-after", b"30"),)


def test_the_fast_path_and_the_documented_route_answer_alike_and_a_failing_model_gets_a_json_500() -> None:
    import httpx

    from lakehouse.ml.serving import create_app

    model = CountingModel()
    app = create_app(watch=_watch(model))
    bodies = [b'{"texts": ["great", "awful"]}', b'{"texts": [""]}', b"nope", b'{"texts": ["boom"]}']

    async def post_all(target: Any) -> list[tuple[int, str]]:
        transport = httpx.ASGITransport(app=target, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
            answers = [
                await client.post("/predict", content=body, headers={"content-type": "application/json"})
                for body in bodies
            ]
            assert (await client.get("/health")).json()["version"] == "3"
        return [(a.status_code, a.text) for a in answers]

    fast, documented = asyncio.run(post_all(app)), asyncio.run(post_all(app.api))
    app.predictor.batcher.close()

    assert [status for status, _ in fast] == [200, 422, 400, 500]
    assert fast[:3] == documented[:3]
    assert json.loads(fast[0][1])["predictions"][0]["label"] == "positive"
    assert json.loads(fast[3][1]) == {"detail": "the server failed (ValueError); see its log"}
    assert documented[3] == fast[3]
