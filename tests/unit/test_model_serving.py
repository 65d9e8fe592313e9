"""The model server's configuration per environment, its command line, and how it batches the requests that wait
while the model is busy (a small pipeline in this process; tests/integration/test_model_serving.py serves one from
the registry over HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from lakehouse.config.settings import MlflowSettings, load_settings
from lakehouse.ml.serving import Batcher, Champion, ChampionWatch, NoChampion, problems_of
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
        assert loaded.mlflow.model_name == "lakehouse_sentiment"

    moved = load_settings(
        "local",
        environ={
            "LAKEHOUSE_HOME": str(tmp_path),
            "LAKEHOUSE_MODEL_SERVER_PORT": "45051",
            "LAKEHOUSE_MODEL_RELOAD_SECONDS": "2.5",
            "LAKEHOUSE_MLFLOW_MODEL_NAME": "other_model",
        },
    )
    assert moved.model_serving is not None and moved.model_serving.address == ("127.0.0.1", 45051)
    assert moved.model_serving.reload_seconds == 2.5 and moved.mlflow.model_name == "other_model"

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
    np.testing.assert_allclose(np.vstack([probabilities for _, probabilities in answers]), expected)
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
    assert good[1].shape == (1, 3) and two[1].shape == (2, 3) and first[1].shape == (1, 3)
    # the call of all four requests failed, then each was predicted alone
    assert model.calls == [5, 1, 1, 1, 2]


def test_without_a_champion_a_request_is_refused_at_once_saying_why() -> None:
    batcher = Batcher(_watch(None))
    with pytest.raises(NoChampion, match=r"no version of model 'm' has the alias 'champion' yet.*every 30 s"):
        asyncio.run(batcher.predict(["great"]))
    batcher.close()


def test_refusals_name_each_problem_without_echoing_the_input() -> None:
    errors = [
        {"type": "string_too_long", "loc": ("body", "texts", 3), "msg": "String should have at most 10000 characters",
         "input": "x" * 10_001},
        {"type": "extra_forbidden", "loc": ("body", "text"), "msg": "Extra inputs are not permitted", "input": 1},
    ]  # fmt: skip
    assert problems_of(errors) == (
        422,
        "texts[3]: String should have at most 10000 characters; text: unknown field (a request has only texts)",
    )
    status, detail = problems_of(
        [{"type": "json_invalid", "loc": ("body", 7), "msg": "JSON decode error", "ctx": {"error": "Expecting ','"}}]
    )
    assert status == 400 and detail.startswith("the body is not valid JSON (Expecting ',' at character 7)")
    many = [
        {"type": "string_type", "loc": ("body", "texts", n), "msg": "Input should be a valid string"} for n in range(25)
    ]
    assert problems_of(many)[1].endswith("; and 15 more")
