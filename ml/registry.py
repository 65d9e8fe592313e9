"""The sentiment model in MLflow: the training run (params, metrics, the model with its signature and an input
example), its registered version, the champion alias, and loading a version back as a pyfunc model.

Where runs and models go is the environment's ``mlflow`` section (``MlflowSettings``: tracking and registry URI,
experiment, model name, alias); nothing here names a server. A training run is found again by its run key (the
tag ``lakehouse.run_key``, e.g. the Airflow DAG run), which is how the gate finds the candidate the train step
registered and how a retried train step finds that it has already run."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from lakehouse.config.ml import SentimentSpec
from lakehouse.config.settings import MlflowSettings
from lakehouse.ml import drift
from lakehouse.ml.errors import RegistryError
from lakehouse.ml.sentiment import TEXT_COLUMN
from lakehouse.ml.training import LABEL_COLUMN, TrainedModel, model_input, model_requirements, train

log = logging.getLogger(__name__)

RUN_KEY_TAG = "lakehouse.run_key"
VERSION_TAG = "lakehouse.model_version"
GATE_TAG = "lakehouse.gate"
GATE_REASON_TAG = "lakehouse.gate_reason"
ARTIFACT = "model"
EXAMPLE_ROWS = 3


@dataclass(frozen=True)
class Candidate:
    """A finished training run and the model version it registered, with the training set it was trained on."""

    run_id: str
    version: str
    run_key: str
    training_set_version: int
    holdout_macro_f1: float
    holdout_rows: int


def connect(settings: MlflowSettings) -> MlflowClient:
    """Point this process's MLflow (the fluent API: runs, ``log_model``, ``load_model``) at the environment's
    tracking server and registry, and return a client of them."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri or settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri or None)


def find_candidate(client: MlflowClient, settings: MlflowSettings, run_key: str) -> Candidate | None:
    """The latest finished training run tagged with ``run_key`` that registered a version, if any."""
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return None
    quoted = run_key.replace("\\", "\\\\").replace("'", "\\'")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{RUN_KEY_TAG}` = '{quoted}' AND attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    for run in runs:
        version = run.data.tags.get(VERSION_TAG)
        if version is not None:
            return Candidate(
                run_id=run.info.run_id,
                version=version,
                run_key=run_key,
                training_set_version=int(run.data.params["training_set_version"]),
                holdout_macro_f1=float(run.data.metrics["holdout_macro_f1"]),
                holdout_rows=int(run.data.params["holdout_rows"]),
            )
    return None


def log_candidate(
    settings: MlflowSettings,
    spec: SentimentSpec,
    trained: TrainedModel,
    run_key: str,
    training_set: dict[str, Any],
    example_texts: list[str],
) -> Candidate:
    """Log a training run (params, metrics, the pipeline as an ``mlflow.sklearn`` model whose pyfunc returns
    class probabilities, with its signature and an input example) and register the model as a new version of
    ``settings.model_name``. No alias is set: only the gate moves the champion."""
    client = connect(settings)
    _import_skops()
    experiment = mlflow.set_experiment(settings.experiment)
    search = spec.search
    params = {
        **training_set,
        "holdout_fraction": spec.training_set.holdout_fraction,
        "train_rows": trained.train_rows,
        "holdout_rows": trained.holdout.rows,
        "ngram_range": list(search.ngram_range),
        "min_df": search.min_df,
        "sublinear_tf": search.sublinear_tf,
        "search_c_values": list(search.c_values),
        "search_class_weights": [w or "none" for w in search.class_weights],
        "cv_folds": search.cv_folds,
        "random_state": search.random_state,
        "best_C": trained.params["C"],
        "best_class_weight": trained.params["class_weight"] or "none",
    }
    with mlflow.start_run(
        experiment_id=experiment.experiment_id, run_name=f"sentiment {run_key}", tags={RUN_KEY_TAG: run_key}
    ) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(trained.metrics())
        example = model_input(example_texts[:EXAMPLE_ROWS])
        signature = infer_signature(example, trained.model.predict_proba(example))
        info = mlflow.sklearn.log_model(
            trained.model,
            name=ARTIFACT,
            registered_model_name=settings.model_name,
            signature=signature,
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            pip_requirements=model_requirements(),
        )
        version = str(info.registered_model_version)
        client.set_model_version_tag(settings.model_name, version, RUN_KEY_TAG, run_key)
        client.set_model_version_tag(
            settings.model_name, version, drift.REFERENCE_TAG, drift.reference_tag(trained.score_reference)
        )
        mlflow.set_tag(VERSION_TAG, version)
    log.info(
        "run %s registered %s version %s: holdout macro-F1 %.4f (cross-validated %.4f), %d training rows, %.1fs",
        run.info.run_id,
        settings.model_name,
        version,
        trained.holdout.macro_f1,
        trained.cv_macro_f1,
        trained.train_rows,
        trained.seconds,
    )
    return Candidate(
        run.info.run_id,
        version,
        run_key,
        int(training_set["training_set_version"]),
        trained.holdout.macro_f1,
        trained.holdout.rows,
    )


def _import_skops() -> None:
    """Import skops (the format ``mlflow.sklearn`` saves in) with warnings silenced. On import it looks up the
    module of every scipy.special ufunc in every loaded module; in an Airflow task process, which has thousands
    loaded, that reads Airflow's deprecated module attributes, and each read warns: a thousand lines of task log."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import skops.io  # noqa: F401


def champion_version(client: MlflowClient, settings: MlflowSettings) -> str | None:
    """The version the champion alias points to; None when there is no such model or alias yet."""
    try:
        model = client.get_registered_model(settings.model_name)
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    version = (model.aliases or {}).get(settings.champion_alias)
    return None if version is None else str(version)


def class_probabilities(settings: MlflowSettings, version: str, texts: list[str]) -> np.ndarray:
    """The registered version's pyfunc predictions (class probabilities, ``CLASSES`` order) for ``texts``."""
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}")
    return np.asarray(model.predict(model_input(texts)))


def move_champion(client: MlflowClient, settings: MlflowSettings, version: str, expected: str | None) -> bool:
    """Point the champion alias at ``version``, provided it still points where the gate saw it (``expected``, None
    for no alias); True when it moved, False when it pointed at ``version`` already. RegistryError when someone
    moved it meanwhile: the gate's comparison no longer holds."""
    current = champion_version(client, settings)
    if current == version:
        return False
    if current != expected:
        raise RegistryError(
            f"the alias {settings.champion_alias!r} of {settings.model_name} points to version {current}, not "
            f"{expected} as when the gate compared the candidate (version {version}) with it: run the gate again"
        )
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, version)
    log.info("%s@%s -> version %s (was %s)", settings.model_name, settings.champion_alias, version, expected)
    return True


def record_gate(
    client: MlflowClient,
    settings: MlflowSettings,
    candidate: Candidate,
    metrics: dict[str, float],
    tags: dict[str, str],
) -> None:
    """The gate's numbers and verdict on the candidate's run (metrics, tags) and its model version (tags)."""
    for metric, number in metrics.items():
        client.log_metric(candidate.run_id, metric, number)
    for key, value in tags.items():
        client.set_tag(candidate.run_id, key, value)
        client.set_model_version_tag(settings.model_name, candidate.version, key, value)


def register_fitted(
    settings: MlflowSettings, spec: SentimentSpec, texts: list[str], labels: list[str], run_key: str
) -> tuple[Candidate, TrainedModel]:
    """Train the job's pipeline on ``texts`` and their ``labels`` (the newest ``holdout_fraction`` of them held out,
    in the order given), log it and register it as a new version, with no alias: a model trained outside the
    training set's table, as the benchmarks and tests need one."""
    rows = pd.DataFrame({TEXT_COLUMN: texts, LABEL_COLUMN: labels})
    cut = len(rows) - max(1, round(len(rows) * spec.training_set.holdout_fraction))
    trained = train(rows.iloc[:cut], rows.iloc[cut:], spec.search)
    candidate = log_candidate(settings, spec, trained, run_key, {"training_set_version": 0}, texts[:EXAMPLE_ROWS])
    return candidate, trained


def score_reference(client: MlflowClient, settings: MlflowSettings, version: str) -> list[float] | None:
    """The score shares of the version's training set (``drift.REFERENCE_TAG``), or None for a version registered
    without them."""
    tags = client.get_model_version(settings.model_name, version).tags or {}
    value = tags.get(drift.REFERENCE_TAG)
    return None if value is None else drift.reference_of_tag(value)
