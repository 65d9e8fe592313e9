"""Every DAG file imports cleanly, quickly and without warnings, and carries tags, retries and docs."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag(airflow_db):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.monotonic()
        bag = DagBag(dag_folder=str(DAGS))
        elapsed = time.monotonic() - started
    ours = [w for w in caught if str(DAGS) in str(w.filename)]
    assert not ours, [str(w.message) for w in ours]
    assert elapsed < 30, f"parsing the DAG folder took {elapsed:.1f}s"
    return bag


def test_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}


def test_expected_dags_are_present(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert {"gold_marts", "streams_available_now", "ml_sentiment", "ml_monitoring"} <= set(dagbag.dag_ids)


def test_every_dag_has_docs_tags_and_retries(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} needs doc_md"
        assert dag.tags and "lakehouse" in dag.tags, f"{dag_id} needs the 'lakehouse' tag"
        assert dag.catchup is False, dag_id
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} needs retries (data errors fail without them)"
            assert task.on_failure_callback, f"{dag_id}.{task.task_id} needs the failure callback"


def test_gold_dag_has_a_gated_task_group_per_mart(dagbag) -> None:  # type: ignore[no-untyped-def]
    from lakehouse.config.marts import load_marts

    dag = dagbag.get_dag("gold_marts")
    for name in load_marts():
        build, gate, load = (dag.get_task(f"{name}.{step}") for step in ("build", "dq_gate", "load"))
        assert gate.task_id in build.downstream_task_ids
        assert load.task_id in gate.downstream_task_ids
        assert any(str(getattr(o, "uri", "")).endswith(f"serving/{name}") for o in load.outlets)


def test_ml_dag_trains_weekly_and_promotes_only_through_its_gate(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.get_dag("ml_sentiment")
    training_set, train, gate = (dag.get_task(t) for t in ("training_set", "train", "gate"))

    assert train.task_id in training_set.downstream_task_ids
    assert gate.task_id in train.downstream_task_ids
    assert {t.task_id for t in dag.tasks} == {"training_set", "train", "gate"}
    assert dag.timetable.summary == "0 0 * * 1"
    assert dag.max_active_runs == 1


def test_ml_monitoring_dag_checks_drift_daily(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.get_dag("ml_monitoring")

    assert {t.task_id for t in dag.tasks} == {"score_drift"}
    assert dag.timetable.summary == "30 0 * * *"
    assert {str(o.uri) for o in dag.get_task("score_drift").outlets} == {
        "lakehouse://serving/ml_score_drift",
        "lakehouse://serving/ml_alerts",
    }


def test_dag_files_do_no_work_at_import() -> None:
    for path in DAGS.glob("*.py"):
        source = path.read_text()
        for forbidden in (
            "import pyspark",
            "from pyspark",
            "Variable.get",
            "psycopg",
            "requests.",
            "import mlflow",
            "from mlflow",
            "sklearn",
            "lakehouse.ml.",
        ):
            assert forbidden not in source, f"{path.name} must not use {forbidden!r} at top level"
