"""Reviews scored in the Silver micro-batch by the registered champion (issue 17): a real MLflow registry, the real
query (Kafka source, Delta sinks) in this process, and the scores compared with the model's own ``predict_proba``
on the same texts, computed here. A promotion between two runs is picked up by the next batch, which the audit
shows."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from lakehouse.config.settings import Settings, settings
from lakehouse.kafka.generator import GeneratorOptions, generate

pytestmark = pytest.mark.integration


def _register(env: Settings, seed: int) -> tuple[str, Any]:
    """The training job's pipeline trained on 600 generated reviews of ``seed``, registered and made the champion;
    its version and the pipeline."""
    from lakehouse.config.ml import sentiment_spec
    from lakehouse.kafka.generator import read_reference
    from lakehouse.kafka.generator.review_text import sample_reviews
    from lakehouse.ml import registry

    corpus = sample_reviews(seed, 600, read_reference("products"))
    candidate, trained = registry.register_fitted(
        env.mlflow, sentiment_spec(), [r.text for r in corpus], [r.label for r in corpus], f"seed {seed}"
    )
    client = registry.connect(env.mlflow)
    registry.move_champion(client, env.mlflow, candidate.version, registry.champion_version(client, env.mlflow))
    return candidate.version, trained.model


def _run(spark: Any, env: Settings) -> None:
    from lakehouse.config.specs import load_event_types
    from lakehouse.spark.io import reference
    from lakehouse.spark.jobs import stream

    spec = load_event_types()["customer_events"]
    reference.refresh(spark, env, [j.reference for j in spec.enrich])
    query = stream.start(spark, env, spec, available_now=True)
    query.awaitTermination()
    assert query.exception() is None


def _produce(env: Settings, seed: int) -> list[dict[str, Any]]:
    from lakehouse.kafka.producer import EventProducer

    messages = [m for m in generate("customer_events", 400, GeneratorOptions(seed=seed)) if m.fault is None]
    with EventProducer(env) as producer:
        producer.send_events("customer_events", messages)
    return [m.event for m in messages if m.event is not None]


def test_reviews_are_scored_by_the_champion_and_a_promotion_takes_the_next_batch(
    kafka_stack: Settings, mlflow_stack: Settings, isolated_serving: Settings, spark: Any, monkeypatch: Any
) -> None:
    from lakehouse.kafka.admin import ensure_topics
    from lakehouse.ml.sentiment import labels_and_scores

    monkeypatch.setenv("LAKEHOUSE_MLFLOW_MODEL_NAME", f"sentiment_{uuid.uuid4().hex[:8]}")
    settings.cache_clear()
    env = settings()
    ensure_topics(env)
    version_one, first = _register(env, seed=3)

    first_events = _produce(env, seed=21)
    _run(spark, env)
    version_two, second = _register(env, seed=4)
    events = first_events + _produce(env, seed=22)
    _run(spark, env)

    silver = spark.read.format("delta").load(env.storage.table_path("silver", "customer_events"))
    rows = silver.select(
        "event_id", "event_type", "review_text", "sentiment_label", "sentiment_score", "model_version"
    ).collect()
    assert len(rows) == len({e["event_id"] for e in events})
    reviews = [r for r in rows if r["event_type"] == "review" and r["review_text"]]
    assert reviews and all(
        r["sentiment_label"] is None and r["model_version"] is None for r in rows if r not in reviews
    )
    by_version: dict[str, list[Any]] = {}
    for row in reviews:
        by_version.setdefault(row["model_version"], []).append(row)
    assert set(by_version) == {version_one, version_two}
    for version, pipeline in ((version_one, first), (version_two, second)):
        scored = by_version[version]
        labels, scores = labels_and_scores(pipeline.predict_proba([r["review_text"] for r in scored]))
        assert [r["sentiment_label"] for r in scored] == labels
        assert [r["sentiment_score"] for r in scored] == pytest.approx(scores, abs=1e-6)
    # the first run's events were all scored by version one, the second's by version two
    first_ids = {e["event_id"] for e in first_events}
    assert {r["model_version"] for r in reviews if r["event_id"] in first_ids} == {version_one}

    with psycopg.connect(env.postgres_dsn()) as conn:
        audit = conn.execute(
            "SELECT batch_id, model_version FROM lakehouse_meta.stream_batches "
            "WHERE query = 'stream_customer_events' AND input_rows > 0 ORDER BY batch_id"
        ).fetchall()
    assert [version for _, version in audit] == [version_one, version_two]
