"""Scoring with the registered sentiment model: which version is the champion, and label and score of texts.

A process loads each model version once and keeps it (Spark's Python workers score batch after batch with it);
a new champion is a new version, loaded on its first use, so the stream needs no restart to pick it up."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lakehouse.config.settings import MlflowSettings
from lakehouse.ml.sentiment import CLASSES, labels_and_scores

log = logging.getLogger(__name__)
_LOADED: dict[str, Any] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registered model, and where to fetch it from."""

    name: str
    version: str
    tracking_uri: str
    registry_uri: str
    # the run that logged it
    run_id: str = ""

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"


class RegistryUnreachableError(RuntimeError):
    """The model registry's server does not accept connections."""


def champion(mlflow: MlflowSettings) -> ModelVersion | None:
    """The version the champion alias points at, or None when the model or the alias does not exist yet.
    RegistryUnreachableError at once when an ``http(s)://`` tracking server does not accept connections (the MLflow
    client would retry for minutes)."""
    address = mlflow.server_address
    if address is not None:
        try:
            socket.create_connection(address, timeout=3).close()
        except OSError as exc:
            raise RegistryUnreachableError(
                f"no MLflow tracking server answers at {mlflow.tracking_uri} ({exc})"
            ) from exc
    # after the check: importing the client takes seconds of CPU, which a stream without a registry never needs
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow.tracking_uri, registry_uri=mlflow.registry_uri or None)
    try:
        found = client.get_model_version_by_alias(mlflow.model_name, mlflow.champion_alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise
    return ModelVersion(
        mlflow.model_name, str(found.version), mlflow.tracking_uri, mlflow.registry_uri, found.run_id or ""
    )


def load(model: ModelVersion) -> Any:
    """The scikit-learn pipeline of ``model``, loaded once per process."""
    with _LOCK:
        pipeline = _LOADED.get(model.uri)
        if pipeline is None:
            import mlflow

            mlflow.set_tracking_uri(model.tracking_uri)
            if model.registry_uri:
                mlflow.set_registry_uri(model.registry_uri)
            pipeline = mlflow.sklearn.load_model(model.uri)
            if tuple(pipeline.classes_) != CLASSES:
                raise ValueError(f"{model.uri} predicts {tuple(pipeline.classes_)}, not {CLASSES}")
            _LOADED[model.uri] = pipeline
            log.info("loaded %s", model.uri)
    return pipeline


def score(model: ModelVersion, texts: pd.Series) -> pd.DataFrame:
    """``label`` and ``score`` of each text (both null where the text is null or blank)."""
    texts = texts.reset_index(drop=True)
    result = pd.DataFrame({"label": pd.Series([None] * len(texts), dtype=object), "score": float("nan")})
    present = texts.notna() & (texts.astype(str).str.strip() != "")
    if present.any():
        labels, scores = labels_and_scores(load(model).predict_proba(texts[present].astype(str)))
        result.loc[present.to_numpy(), "label"] = labels
        result.loc[present.to_numpy(), "score"] = scores
    return result
