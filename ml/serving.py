"""The sentiment model over REST: a FastAPI app serving the registry's champion (``mlflow.model_name`` at
``mlflow.champion_alias``), run by uvicorn as the local stack's ``model-server``.

* ``POST /predict`` takes ``{"texts": [...]}`` (1 to 1,000 texts, each 1 to 10,000 characters and not only
  whitespace) and answers each text's label, score and class probabilities (``lakehouse.ml.sentiment``).
* ``GET /health`` names the model and the version served; 503 while the alias names no version.
* ``/docs`` and ``/openapi.json``: the OpenAPI description.

Nothing on the request path asks MLflow: the model is in memory, and a background task asks the registry at most
every ``model_serving.reload_seconds`` which version the alias names, loading a new one when it moved (a
promotion reaches the endpoint without a restart). The model is loaded as the scikit-learn pipeline it was logged
as (``mlflow.sklearn.load_model``), whose ``predict_proba`` is the pyfunc model's ``predict``.

Requests that arrive while the model is busy are predicted together in one call (dynamic batching): a pipeline's
fixed cost per call (about 1 ms for TF-IDF + logistic regression) is paid once per batch, not once per text, which
keeps single-text latency low under concurrent clients. Run it with::

    python -m uvicorn --factory lakehouse.ml.serving:create_app --host 127.0.0.1 --port 5001
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakehouse.config.settings import MlflowSettings, Settings
from lakehouse.ml.sentiment import CLASSES, labels_and_scores

log = logging.getLogger(__name__)
MAX_TEXTS = 1000
MAX_TEXT_CHARS = 10_000
# the most texts one model call predicts when requests are batched together (a request is never split)
MAX_BATCH_TEXTS = 1024
DEFAULT_RELOAD_SECONDS = 30.0
# at most this many problems are listed in a 4xx answer (a request of 1,000 bad texts gets a short answer)
MAX_LISTED_PROBLEMS = 10
_HINT = 'send a JSON object {"texts": ["a review", ...]} with Content-Type: application/json'


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
class Champion:
    """The version the alias named when it was loaded, and its scikit-learn pipeline."""

    name: str
    alias: str
    version: str
    run_id: str | None
    model: Any

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities per text, columns in ``CLASSES`` order. scikit-learn's input and parameter checks
        are skipped (texts are validated already): they are most of a one-text call's cost."""
        import sklearn

        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return np.asarray(self.model.predict_proba(list(texts)))


class NoChampion(Exception):  # noqa: N818 - a state, not a failure of the server
    """The alias names no servable version (yet)."""


class ChampionWatch:
    """Holds the champion in memory and follows the alias: ``refresh`` asks the registry which version it names
    and loads that version when it differs from the one held."""

    def __init__(self, mlflow: MlflowSettings, reload_seconds: float) -> None:
        self.name, self.alias, self.reload_seconds = mlflow.model_name, mlflow.champion_alias, reload_seconds
        self.tracking_uri, self.registry_uri = mlflow.tracking_uri, mlflow.registry_uri or None
        self.champion: Champion | None = None
        self.problem = f"no version of model {self.name!r} has the alias {self.alias!r} yet"
        self._rejected: set[str] = set()
        self._lock = threading.Lock()

    def require(self) -> Champion:
        """The champion, or NoChampion saying why there is none."""
        champion = self.champion
        if champion is None:
            raise NoChampion(
                f"no model to serve: {self.problem} (this server asks the registry every "
                f"{self.reload_seconds:g} s and serves the version as soon as the alias names one)"
            )
        return champion

    def refresh(self) -> None:
        """Follow the alias once; a registry that cannot be asked leaves the champion as it is (logged)."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        with self._lock:
            client = MlflowClient(self.tracking_uri, self.registry_uri)
            try:
                named = client.get_model_version_by_alias(self.name, self.alias)
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                    if self.champion is not None:
                        log.warning("the alias %s of %s names no version now: serving none", self.alias, self.name)
                    self.champion = None
                    self.problem = f"no version of model {self.name!r} has the alias {self.alias!r}"
                else:
                    log.warning("could not ask the registry for %s@%s: %s", self.name, self.alias, exc)
                return
            except OSError as exc:
                log.warning("could not reach the registry at %s: %s", self.tracking_uri, exc)
                return
            version = str(named.version)
            if (self.champion is not None and self.champion.version == version) or version in self._rejected:
                return
            self._load(version, named.run_id)

    def _load(self, version: str, run_id: str | None) -> None:
        import mlflow.sklearn

        started = time.monotonic()
        uri = f"models:/{self.name}/{version}"
        try:
            model = mlflow.sklearn.load_model(uri)
        except Exception as exc:
            # a version that cannot be loaded (no sklearn flavor, a missing artifact) must not stop the server
            log.exception("could not load %s; still serving %s", uri, self._serving())
            self.problem = f"version {version} of model {self.name!r} could not be loaded: {exc}"
            self._rejected.add(version)
            return
        classes = tuple(str(c) for c in getattr(model, "classes_", ()))
        if classes != CLASSES or not hasattr(model, "predict_proba"):
            log.error("%s has classes %s, not %s (or no predict_proba): not served", uri, classes, CLASSES)
            self.problem = f"version {version} of model {self.name!r} predicts {classes}, not the classes {CLASSES}"
            self._rejected.add(version)
            return
        self.champion = Champion(self.name, self.alias, version, run_id, model)
        log.info("serving %s (%s@%s, run %s), loaded in %.1fs", uri, self.name, self.alias, run_id,
                 time.monotonic() - started)  # fmt: skip

    def _serving(self) -> str:
        return f"version {self.champion.version}" if self.champion else "nothing"

    async def follow(self) -> None:
        """Refresh every ``reload_seconds`` until cancelled."""
        while True:
            await asyncio.sleep(self.reload_seconds)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:
                log.exception("following %s@%s failed; trying again in %gs", self.name, self.alias, self.reload_seconds)


_Waiting = tuple[Sequence[str], "asyncio.Future[tuple[Champion, np.ndarray]]"]


class Batcher:
    """Predicts the texts of the requests waiting while the model is busy in one call, on one worker thread.

    A request that finds the model idle is predicted at once (no waiting for a batch to fill); the requests that
    arrive meanwhile form the next call, up to ``max_texts`` texts."""

    def __init__(self, watch: ChampionWatch, max_texts: int = MAX_BATCH_TEXTS) -> None:
        self.watch, self.max_texts = watch, max_texts
        self._waiting: list[_Waiting] = []
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

    async def predict(self, texts: Sequence[str]) -> tuple[Champion, np.ndarray]:
        """The champion that predicted, and the class probabilities of ``texts``."""
        champion = self.watch.require()  # fails fast, without queueing, while there is none
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Champion, np.ndarray]] = loop.create_future()
        self._waiting.append((texts, future))
        if not self._busy:
            self._busy = True
            self._task = loop.create_task(self._drain(loop, champion))
        return await future

    async def _drain(self, loop: asyncio.AbstractEventLoop, champion: Champion) -> None:
        try:
            while self._waiting:
                batch: list[_Waiting] = []
                size = 0
                while self._waiting and (not batch or size + len(self._waiting[0][0]) <= self.max_texts):
                    batch.append(self._waiting.pop(0))
                    size += len(batch[-1][0])
                champion = self.watch.champion or champion  # a reload between batches applies to the next one
                await self._run(loop, champion, batch)
        finally:
            self._busy = False

    async def _run(self, loop: asyncio.AbstractEventLoop, champion: Champion, batch: list[_Waiting]) -> None:
        texts = [text for request, _ in batch for text in request]
        try:
            probabilities = await loop.run_in_executor(self._executor, champion.predict, texts)
        except Exception as exc:  # noqa: BLE001 - handed to the request it belongs to
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            for one in batch:  # only the request whose texts broke the call fails
                await self._run(loop, champion, [one])
            return
        at = 0
        for request, future in batch:
            if not future.done():  # done: the client went away
                future.set_result((champion, probabilities[at : at + len(request)]))
            at += len(request)

    def close(self) -> None:
        """Stop the worker thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def predictions_json(champion: Champion, probabilities: np.ndarray) -> bytes:
    """The ``PredictResponse`` body, serialised directly (about 10x faster than through pydantic for 1,000 texts)."""
    labels, scores = labels_and_scores(probabilities)
    rounded = probabilities.round(6).tolist()
    predictions = [
        {"label": label, "score": score, "probabilities": dict(zip(CLASSES, row, strict=True))}
        for label, score, row in zip(labels, scores, rounded, strict=True)
    ]
    body = {"model": champion.name, "version": champion.version, "predictions": predictions}
    return json.dumps(body, separators=(",", ":")).encode()


def create_app(
    settings: Settings | None = None,
    reload_seconds: float | None = None,
    watch: ChampionWatch | None = None,
    batch_texts: int = MAX_BATCH_TEXTS,
) -> FastAPI:
    """The app serving ``settings``' champion (default: the current environment's settings); uvicorn calls it with
    ``--factory``. ``batch_texts`` caps the texts of one model call (1: no batching, one call per request)."""
    if watch is None:
        if settings is None:
            from lakehouse.config.settings import settings as current

            settings = current()
        serving = settings.model_serving
        every = reload_seconds or (serving.reload_seconds if serving else DEFAULT_RELOAD_SECONDS)
        watch = ChampionWatch(settings.mlflow, every)
    _log_to_stderr()
    batcher = Batcher(watch, batch_texts)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # the first look happens before the port answers, so a server that is up serves the champion there is; the
        # loader's imports too (5 to 10 s on 2 cores), so a first promotion is served as soon as a later one
        try:
            await asyncio.to_thread(_import_the_loader)
            await asyncio.to_thread(watch.refresh)
        except Exception:
            log.exception("could not look up %s@%s at start-up; trying again later", watch.name, watch.alias)
        following = asyncio.create_task(watch.follow())
        yield
        following.cancel()
        batcher.close()

    app = FastAPI(
        title="lakehouse sentiment model",
        summary=f"Serves the version of the registered model {watch.name!r} that has the alias {watch.alias!r}.",
        version="1",
        lifespan=lifespan,
    )
    _add_error_handlers(app)
    refused: dict[int | str, dict[str, Any]] = {
        400: {"model": Problem, "description": "the body is not valid JSON"},
        422: {"model": Problem, "description": "the body is not a valid request (every problem named)"},
        503: {"model": Problem, "description": "the alias names no version yet"},
    }

    @app.post("/predict", response_model=PredictResponse, responses=refused)
    async def predict(request: PredictRequest) -> Response:
        """Label and score each text with the champion (in the order of the texts)."""
        try:
            champion, probabilities = await batcher.predict(request.texts)
        except NoChampion as exc:
            return _unavailable(exc, watch)
        return Response(predictions_json(champion, probabilities), media_type="application/json")

    @app.get("/health", response_model=Health, responses={503: refused[503]})
    async def health() -> Response:
        """The model's name, alias and the version served; 503 while there is none."""
        try:
            champion = watch.require()
        except NoChampion as exc:
            return _unavailable(exc, watch)
        body = Health(status="ok", model=champion.name, alias=champion.alias, version=champion.version,
                      run_id=champion.run_id)  # fmt: skip
        return JSONResponse(body.model_dump())

    return app


def _import_the_loader() -> None:
    import mlflow.sklearn  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import skops.io  # noqa: F401 - the models' format; its import lists its trusted types (5 s on 2 cores)


def _log_to_stderr() -> None:
    """Under uvicorn, which configures only its own loggers: this module's INFO lines (loads, reloads) in the
    server's log, formatted as uvicorn's."""
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(asctime)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _unavailable(exc: NoChampion, watch: ChampionWatch) -> JSONResponse:
    retry = str(max(1, round(watch.reload_seconds)))
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": retry})


def _where(loc: Sequence[int | str]) -> str:
    """``("body", "texts", 3)`` as ``texts[3]``."""
    where = ""
    for part in loc[1:] if loc[:1] == ("body",) else loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where or "body"


def problems_of(errors: Sequence[Any]) -> tuple[int, str]:
    """The status and the one-line message of a refused request (never echoing the input back)."""
    problems: list[str] = []
    status = 422
    for error in errors:
        kind, loc = error.get("type"), tuple(error.get("loc", ()))
        if kind == "json_invalid":
            status = 400
            reason = error.get("ctx", {}).get("error", "")
            problems.append(f"the body is not valid JSON ({reason} at character {loc[-1]}): {_HINT}")
        elif loc in (("body",), ()):
            problems.append(f"the body is not a JSON object with a list of texts ({error.get('msg')}): {_HINT}")
        elif kind == "missing" and loc[-1:] == ("texts",):
            problems.append(f"texts is missing: {_HINT}")
        elif kind == "extra_forbidden":
            problems.append(f"{_where(loc)}: unknown field (a request has only texts)")
        else:
            problems.append(f"{_where(loc)}: {error.get('msg')}")
    more = len(problems) - MAX_LISTED_PROBLEMS
    listed = "; ".join(problems[:MAX_LISTED_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
    return status, listed


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, detail = problems_of(exc.errors())
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers "There was an error parsing the body" for a body json cannot even start on: name why
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError | RecursionError):
            why = "it is not UTF-8" if isinstance(cause, UnicodeDecodeError) else "it is nested too deep"
            return JSONResponse({"detail": f"the body is not valid JSON ({why}): {_HINT}"}, status_code=400)
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        # a request that passed validation and still failed is the server's fault: say so, in JSON, and log it
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"the server failed ({type(exc).__name__}); see its log"}, status_code=500)
