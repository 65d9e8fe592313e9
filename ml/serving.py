"""The sentiment model over REST, run by uvicorn as the local stack's ``model-server``: the registry's champion
(``mlflow.model_name`` at ``mlflow.champion_alias``), held in memory (``lakehouse.ml.champion``).

* ``POST /predict`` takes ``{"texts": [...]}`` (1 to 1,000 texts, each 1 to 10,000 characters and not only
  whitespace) and answers each text's label, score and class probabilities (``lakehouse.ml.sentiment``), with the
  model's name and version.
* ``GET /health`` names the model, its alias and the version served; 503 while the alias names no version.
* ``/docs`` and ``/openapi.json``: the OpenAPI description (FastAPI).

Bad input gets a 4xx whose ``detail`` names every problem (up to ten), never the input itself: 400 for a body that
is empty or not JSON, 413 over 64 MiB, 415 without ``Content-Type: application/json``, 422 for JSON that is not a
valid request. Nothing on the request path asks MLflow: a background task asks the registry at most every
``model_serving.reload_seconds`` which version the alias names and loads a new one when it moved. Nor PostgreSQL:
each ``POST /predict``'s latency is counted in memory (``lakehouse.ml.latency``) and another background task writes
each window of ``model_serving.latency_window_seconds`` into ``serving.ml_serving_latency``.

``POST /predict`` goes straight from uvicorn to ``Predictor`` (``ModelServerApp``): Starlette's request objects,
middleware and routing were half the CPU time of a one-text request. Everything else goes to the FastAPI app, which
documents ``/predict`` and answers it the same way (the same ``Predictor``)::

    python -m uvicorn --factory lakehouse.ml.serving:create_app --host 127.0.0.1 --port 5001
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError
from starlette.types import Receive, Scope, Send

from lakehouse.config import log_masking
from lakehouse.config.settings import Settings
from lakehouse.ml.champion import (
    MAX_BATCH_TEXTS,
    Batcher,
    ChampionWatch,
    NoChampion,
    import_the_loader,
    use_registry,
)
from lakehouse.ml.latency import DEFAULT_WINDOW_SECONDS, LatencyMonitor, LatencyRecorder
from lakehouse.ml.sentiment import CLASSES

log = logging.getLogger(__name__)
MAX_TEXTS = 1000
MAX_TEXT_CHARS = 10_000
# the largest body read: 1,000 texts of 10,000 characters take at most 40 MB in UTF-8, more only when escaped
MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_RELOAD_SECONDS = 30.0
# at most this many problems are listed in a 4xx answer (a request of 1,000 bad texts gets a short answer)
MAX_LISTED_PROBLEMS = 10
_HINT = 'send a JSON object {"texts": ["a review", ...]} with Content-Type: application/json'
_JSON = (b"content-type", b"application/json")


def _not_blank(text: str) -> str:
    if not text.strip():
        raise PydanticCustomError("blank_text", "text is empty or only whitespace")
    return text


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_not_blank)]


class PredictRequest(BaseModel):
    """A batch of review texts."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["Great sound, love it."]}]})

    texts: list[Text] = Field(
        min_length=1,
        max_length=MAX_TEXTS,
        description=f"1 to {MAX_TEXTS} texts, each 1 to {MAX_TEXT_CHARS:,} characters and not only whitespace",
    )


class Prediction(BaseModel):
    """One text's sentiment."""

    label: str = Field(description=f"the most probable class, one of {', '.join(CLASSES)}")
    score: float = Field(ge=-1, le=1, description="P(positive) - P(negative), from -1 to 1")
    probabilities: dict[str, float] = Field(description="each class's probability")


class PredictResponse(BaseModel):
    """The predictions, in the order of the texts, and the model version that made them."""

    model: str
    version: str
    predictions: list[Prediction]


class Health(BaseModel):
    """The model and the version served."""

    status: str
    model: str
    alias: str
    version: str
    run_id: str | None


class Problem(BaseModel):
    """Why a request was refused."""

    detail: str


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, JSON body and extra headers; for a prediction, the texts predicted and the model
    version that predicted them."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    texts: int = 0
    version: str | None = None


def _problem(status: int, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Answer:
    return Answer(status, json.dumps({"detail": detail}).encode(), headers)


def _failed(exc: Exception) -> Answer:
    return _problem(500, f"the server failed ({type(exc).__name__}); see its log")


class Predictor:
    """What ``POST /predict`` answers, from the request's Content-Type and body."""

    def __init__(self, watch: ChampionWatch, batcher: Batcher) -> None:
        self.watch, self.batcher = watch, batcher

    async def answer(self, content_type: str, body: bytes) -> Answer:
        """Validate (pydantic parses and checks the JSON in one step), predict with the champion, or refuse."""
        if not _is_json(content_type):
            return _problem(415, f"the body must be declared as JSON: {_HINT}")
        if len(body) > MAX_BODY_BYTES:
            return _problem(413, f"the body is over {MAX_BODY_BYTES // 2**20} MiB: send at most {MAX_TEXTS} texts")
        try:
            texts = PredictRequest.model_validate_json(body).texts
        except ValidationError as exc:
            status, detail = problems_of(exc.errors(include_url=False, include_input=False), body)
            return _problem(status, detail)
        try:
            champion, predictions = await self.batcher.predict(texts)
        except NoChampion as exc:
            return self.unavailable(exc)
        answer = {"model": champion.name, "version": champion.version, "predictions": predictions}
        return Answer(
            200, json.dumps(answer, separators=(",", ":")).encode(), texts=len(texts), version=champion.version
        )

    def unavailable(self, exc: NoChampion) -> Answer:
        """503, and when to ask again."""
        retry = str(max(1, round(self.watch.reload_seconds))).encode()
        return _problem(503, str(exc), ((b"retry-after", retry),))


class ModelServerApp:
    """The ASGI app uvicorn runs: ``POST /predict`` to the ``Predictor``, everything else to the FastAPI app
    (``api``: health, OpenAPI, docs, 404 and 405, the lifespan). Each ``POST /predict`` answered is counted by
    ``latency``, from the moment uvicorn hands it over to the moment its answer is ready to send."""

    def __init__(self, api: FastAPI, predictor: Predictor, latency: LatencyRecorder) -> None:
        self.api, self.predictor, self.latency = api, predictor, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/predict":
            await self.api(scope, receive, send)
            return
        started_ns = time.perf_counter_ns()
        content_type = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), "")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY_BYTES or not message.get("more_body"):
                break
        try:
            answer = await self.predictor.answer(content_type, b"".join(chunks))
        except Exception as exc:
            # bad input is answered before it reaches the model: what fails later is the server's fault; in JSON
            log.error("POST /predict failed", exc_info=exc)
            answer = _failed(exc)
        self.latency.record(started_ns, answer.status, answer.texts, self._version(answer))
        headers = [_JSON, (b"content-length", str(len(answer.body)).encode()), *answer.headers]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    def _version(self, answer: Answer) -> str:
        """The version that predicted, else the one held when the request was refused (empty: none)."""
        if answer.version is not None:
            return answer.version
        champion = self.predictor.watch.champion
        return champion.version if champion is not None else ""


def create_app(
    settings: Settings | None = None,
    reload_seconds: float | None = None,
    watch: ChampionWatch | None = None,
    batch_texts: int = MAX_BATCH_TEXTS,
) -> ModelServerApp:
    """The app serving ``settings``' champion (default: the current environment's settings); uvicorn calls it with
    ``--factory``. ``batch_texts`` caps the texts of one model call (1: no batching, one call per request). While
    it runs (its lifespan), the latency of each window goes to the settings' serving database."""
    if settings is None:
        from lakehouse.config.settings import settings as current

        settings = current()
    serving = settings.model_serving
    if watch is None:
        every = reload_seconds or (serving.reload_seconds if serving else DEFAULT_RELOAD_SECONDS)
        watch = ChampionWatch(settings.mlflow, every)
        use_registry(settings.mlflow)
    _log_to_stderr()
    batcher = Batcher(watch, batch_texts)
    predictor = Predictor(watch, batcher)
    recorder = LatencyRecorder(serving.latency_window_seconds if serving else DEFAULT_WINDOW_SECONDS)
    port = serving.address[1] if serving else 0
    monitor = LatencyMonitor(
        recorder, settings.postgres_dsn(), f"{socket.gethostname()}:{port}/{os.getpid()}", watch.name
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # the first look happens before the port answers, so a server that is up serves the champion there is; the
        # loader's imports too (5 to 10 s on 2 cores), so a first promotion is served as soon as a later one
        try:
            await asyncio.to_thread(import_the_loader)
            await asyncio.to_thread(watch.refresh)
        except Exception:
            log.exception("could not look up %s@%s at start-up; trying again later", watch.name, watch.alias)
        following = asyncio.create_task(watch.follow())
        monitor.start()
        yield
        following.cancel()
        await monitor.close()
        batcher.close()

    api = FastAPI(
        title="lakehouse sentiment model",
        summary=f"Serves the version of the registered model {watch.name!r} that has the alias {watch.alias!r}.",
        version="1",
        lifespan=lifespan,
    )
    refused: dict[int | str, dict[str, Any]] = {
        400: {"model": Problem, "description": "the body is empty or not valid JSON"},
        413: {"model": Problem, "description": f"the body is over {MAX_BODY_BYTES // 2**20} MiB"},
        415: {"model": Problem, "description": "the body is not declared as JSON (Content-Type)"},
        422: {"model": Problem, "description": "the JSON is not a valid request (each problem named)"},
        503: {"model": Problem, "description": "the alias names no version yet"},
    }
    request_body = {"content": {"application/json": {"schema": PredictRequest.model_json_schema()}}, "required": True}

    @api.post(
        "/predict", response_model=PredictResponse, responses=refused, openapi_extra={"requestBody": request_body}
    )
    async def predict(request: Request) -> Response:
        """Label and score each text with the champion (in the order of the texts)."""
        answer = await predictor.answer(request.headers.get("content-type", ""), await request.body())
        headers = {k.decode(): v.decode() for k, v in answer.headers}
        return Response(answer.body, status_code=answer.status, headers=headers, media_type="application/json")

    @api.get("/health", response_model=Health, responses={503: refused[503]})
    async def health() -> Response:
        """The model's name, alias and the version served; 503 while there is none."""
        try:
            champion = watch.require()
        except NoChampion as exc:
            answer = predictor.unavailable(exc)
            return Response(answer.body, 503, {"retry-after": answer.headers[0][1].decode()}, "application/json")
        body = Health(status="ok", model=champion.name, alias=champion.alias, version=champion.version,
                      run_id=champion.run_id)  # fmt: skip
        return JSONResponse(body.model_dump())

    @api.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        # in JSON, not Starlette's bare text "Internal Server Error"
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return Response(_failed(exc).body, 500, media_type="application/json")

    return ModelServerApp(api, predictor, recorder)


def _log_to_stderr() -> None:
    """Under uvicorn, which configures only its own loggers: the INFO lines of this layer (loads, reloads) in the
    server's log, formatted as uvicorn's; secrets masked in every line of the process."""
    log_masking.install()
    ml = logging.getLogger("lakehouse.ml")
    if not ml.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(asctime)s %(name)s: %(message)s"))
        ml.addHandler(handler)
        ml.setLevel(logging.INFO)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _where(loc: Sequence[int | str]) -> str:
    """``("texts", 3)`` as ``texts[3]``."""
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where


def problems_of(errors: Sequence[Any], body: bytes) -> tuple[int, str]:
    """The status and the one-line message of a request ``PredictRequest`` refused (never echoing the input)."""
    problems: list[str] = []
    status = 422
    for error in errors:
        kind, loc, message = error.get("type"), tuple(error.get("loc", ())), str(error.get("msg", ""))
        if kind == "json_invalid":
            status = 400
            if not body.strip():
                problems.append(f"the body is empty: {_HINT}")
            elif not _is_utf8(body):
                problems.append(f"the body is not valid JSON (it is not UTF-8): {_HINT}")
            else:
                problems.append(f"the body is not valid JSON ({message.removeprefix('Invalid JSON: ')}): {_HINT}")
        elif not loc:
            problems.append(f"the body is not a JSON object with a list of texts ({message}): {_HINT}")
        elif kind == "missing" and loc == ("texts",):
            problems.append(f"texts is missing: {_HINT}")
        elif kind == "extra_forbidden":
            problems.append(f"{_where(loc)}: unknown field (a request has only texts)")
        else:
            problems.append(f"{_where(loc)}: {message}")
    more = len(problems) - MAX_LISTED_PROBLEMS
    return status, "; ".join(problems[:MAX_LISTED_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
