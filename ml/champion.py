"""The sentiment model in the model server's memory: the version the registry's alias names (``Champion``), followed
by ``ChampionWatch``, and the ``Batcher`` that predicts the texts of the requests waiting while the model is busy
in one call.

The model is loaded as the scikit-learn pipeline it was logged as (``mlflow.sklearn.load_model``), whose
``predict_proba`` is the registered model's pyfunc ``predict``: it predicts one text faster than the pyfunc model,
more so with scikit-learn's input checks skipped (docs/benchmarks.md, model serving). A pipeline call has a fixed
cost (about 1 ms for TF-IDF + logistic regression) that a batch pays once, not once per text: that keeps one-text
requests fast under concurrent clients.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from lakehouse.config.settings import MlflowSettings
from lakehouse.ml.sentiment import CLASSES, labels_and_scores

log = logging.getLogger(__name__)
# the most texts one model call predicts when requests are batched together (a request is never split)
MAX_BATCH_TEXTS = 1024


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

    def score(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Each text's prediction as ``/predict`` answers it: label, score and class probabilities."""
        probabilities = self.predict(texts)
        labels, scores = labels_and_scores(probabilities)
        rows = probabilities.round(6).tolist()
        return [
            {"label": label, "score": score, "probabilities": dict(zip(CLASSES, row, strict=True))}
            for label, score, row in zip(labels, scores, rows, strict=True)
        ]


class NoChampion(Exception):  # noqa: N818 - a state, not a failure of the server
    """The alias names no servable version (yet)."""


class ChampionWatch:
    """Holds the champion in memory and follows the alias: ``refresh`` asks the registry which version it names
    and loads that version when it differs from the one held."""

    def __init__(self, mlflow: MlflowSettings, reload_seconds: float) -> None:
        self.mlflow, self.reload_seconds = mlflow, reload_seconds
        self.name, self.alias = mlflow.model_name, mlflow.champion_alias
        self.champion: Champion | None = None
        self.problem = f"no version of model {self.name!r} has the alias {self.alias!r} yet"
        # versions that predict other classes than CLASSES: not loaded again (a failed load is tried again)
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
        from mlflow.exceptions import MlflowException

        from lakehouse.ml.scoring import RegistryUnreachableError, champion

        with self._lock:
            try:
                named = champion(self.mlflow)
            except (RegistryUnreachableError, MlflowException, OSError) as exc:
                log.warning("could not ask the registry for %s@%s: %s", self.name, self.alias, exc)
                return
            if named is None:
                if self.champion is not None:
                    log.warning("the alias %s of %s names no version now: serving none", self.alias, self.name)
                self.champion = None
                self.problem = f"no version of model {self.name!r} has the alias {self.alias!r}"
            elif (self.champion is None or self.champion.version != named.version) and (
                named.version not in self._rejected
            ):
                self._load(named.version, named.run_id or None)

    def _load(self, version: str, run_id: str | None) -> None:
        import mlflow.sklearn

        started = time.monotonic()
        uri = f"models:/{self.name}/{version}"
        try:
            model = mlflow.sklearn.load_model(uri)
        except Exception as exc:
            # a version that cannot be loaded (no sklearn flavor, an artifact missing or not served) must not stop the
            # server: it keeps what it serves and tries again at the next refresh
            log.exception("could not load %s; still serving %s", uri, self._serving())
            if self.champion is None:
                self.problem = f"version {version} of model {self.name!r} could not be loaded: {exc}"
            return
        classes = tuple(str(c) for c in getattr(model, "classes_", ()))
        if classes != CLASSES or not hasattr(model, "predict_proba"):
            log.error("%s has classes %s, not %s (or no predict_proba): not served", uri, classes, CLASSES)
            if self.champion is None:
                self.problem = f"version {version} of model {self.name!r} predicts {classes}, not {CLASSES}"
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


Scored = tuple[Champion, list[dict[str, Any]]]
_Waiting = tuple[Sequence[str], "asyncio.Future[Scored]"]


class Batcher:
    """Predicts the texts of the requests waiting while the model is busy in one call, on one worker thread.

    A request that finds the model idle is predicted at once (no waiting for a batch to fill); the requests that
    arrive meanwhile form the next call, up to ``max_texts`` texts."""

    def __init__(self, watch: ChampionWatch, max_texts: int = MAX_BATCH_TEXTS) -> None:
        self.watch, self.max_texts = watch, max_texts
        self._waiting: deque[_Waiting] = deque()
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

    async def predict(self, texts: Sequence[str]) -> Scored:
        """The champion that predicted, and the predictions of ``texts`` (``Champion.score``)."""
        champion = self.watch.require()  # fails fast, without queueing, while there is none
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scored] = loop.create_future()
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
                    batch.append(self._waiting.popleft())
                    size += len(batch[-1][0])
                champion = self.watch.champion or champion  # a reload between batches applies to the next one
                await self._run(loop, champion, batch)
        finally:
            self._busy = False

    async def _run(self, loop: asyncio.AbstractEventLoop, champion: Champion, batch: list[_Waiting]) -> None:
        texts = [text for request, _ in batch for text in request]
        try:
            predictions = await loop.run_in_executor(self._executor, champion.score, texts)
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
                future.set_result((champion, predictions[at : at + len(request)]))
            at += len(request)

    def close(self) -> None:
        """Stop the worker thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def use_registry(mlflow_settings: MlflowSettings) -> None:
    """Point this process's MLflow client at the environment's tracking server and registry: ``models:/`` URIs are
    resolved through them, whatever ``MLFLOW_TRACKING_URI`` says (the server is a process of its own)."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_settings.tracking_uri)
    if mlflow_settings.registry_uri:
        mlflow.set_registry_uri(mlflow_settings.registry_uri)


def import_the_loader() -> None:
    import mlflow.sklearn  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import skops.io  # noqa: F401 - the models' format; its import lists its trusted types (5 s on 2 cores)
