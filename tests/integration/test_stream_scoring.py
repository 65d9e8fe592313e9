"""Reviews scored in the Silver micro-batch by the registered champion (issue 17): a real MLflow registry, the real
query (Kafka source, Delta sinks) in this process, and the scores compared with the model's own ``predict_proba``
on the same texts, computed here. A promotion between two runs is picked up by the next batch, which the audit
shows; each batch times its scoring; the backfill rescores the older version's reviews with the champion; a day of
skewed reviews raises a drift alert."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lakehouse.config.settings import Settings, settings
from lakehouse.kafka.generator import GeneratorOptions, generate
from tests.integration.test_postgres_roles import login_role

pytestmark = pytest.mark.integration
# the generator's events fall on its default start day; the skewed reviews on the next
DAY = GeneratorOptions().start.date()
SKEWED_DAY_START = datetime(2026, 11, 21, tzinfo=UTC)
SKEWED_REVIEWS = 150
DOCS_ML = Path(__file__).resolve().parents[2] / "docs" / "ml.md"


def _register(env: Settings, seed: int) -> tuple[str, Any]:
    """The training job's pipeline trained on 1,000 generated reviews of ``seed`` (200 held out: the reference of
    its scores), registered and made the champion; its version and the pipeline."""
    from lakehouse.config.ml import sentiment_spec
    from lakehouse.kafka.generator import read_reference
    from lakehouse.kafka.generator.review_text import sample_reviews
    from lakehouse.ml import registry

    corpus = sample_reviews(seed, 1000, read_reference("products"))
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


def test_reviews_are_scored_by_the_champion_rescored_after_a_promotion_and_their_drift_watched(
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
            "SELECT batch_id, model_version, scored_rows, scoring_ms FROM lakehouse_meta.stream_batches "
            "WHERE query = 'stream_customer_events' AND input_rows > 0 ORDER BY batch_id"
        ).fetchall()
    assert [version for _, version, _, _ in audit] == [version_one, version_two]
    # each batch timed its scoring: every review it scored, in a positive time
    assert [scored for _, _, scored, _ in audit] == [len(by_version[version_one]), len(by_version[version_two])]
    assert all(ms > 0 for _, _, _, ms in audit)
    with psycopg.connect(env.postgres_dsn()) as conn:
        latency = conn.execute(
            "SELECT model_version, batches, reviews, p50_ms_per_review, p95_ms_per_review "
            "FROM serving.ml_stream_scoring_latency WHERE query = 'stream_customer_events' ORDER BY model_version"
        ).fetchall()
    assert [(v, b, r) for v, b, r, _, _ in latency] == sorted(
        [(version_one, 1, len(by_version[version_one])), (version_two, 1, len(by_version[version_two]))]
    )
    assert all(0 < p50 <= p95 for _, _, _, p50, p95 in latency)

    _rescore_with_the_champion(spark, env, version_two, second, len(by_version[version_one]))
    _drift_alerts_on_skewed_reviews(spark, env, version_two)


def _silver_reviews(spark: Any, env: Settings) -> list[Any]:
    silver = spark.read.format("delta").load(env.storage.table_path("silver", "customer_events"))
    return silver.where("event_type = 'review' AND review_text IS NOT NULL").collect()


def _rescore_with_the_champion(spark: Any, env: Settings, champion: str, pipeline: Any, stale: int) -> None:
    """The backfill scores the reviews an older version scored with the champion, and only those; again, none."""
    from lakehouse.ml.sentiment import labels_and_scores
    from lakehouse.spark.jobs.sentiment import rescore

    before = {r["event_id"]: r for r in _silver_reviews(spark, env)}
    assert rescore(spark, env, DAY, DAY) == stale
    after = _silver_reviews(spark, env)
    assert len(after) == len(before) and {r["model_version"] for r in after} == {champion}
    labels, scores = labels_and_scores(pipeline.predict_proba([r["review_text"] for r in after]))
    assert [r["sentiment_label"] for r in after] == labels
    assert [r["sentiment_score"] for r in after] == pytest.approx(scores, abs=1e-6)
    # nothing but the scores changed
    untouched = ("event_type", "review_text", "rating", "_silver_batch", "_processed_at")
    assert all(all(r[c] == before[r["event_id"]][c] for c in untouched) for r in after)
    assert rescore(spark, env, DAY, DAY) == 0


def _psi(reference: list[float], scores: list[float]) -> float:
    """PSI over 10 equal bins of [-1, 1], empty shares floored at 1e-4, computed here with numpy."""
    import numpy as np

    counts, _ = np.histogram(np.clip(scores, -1, 1), bins=10, range=(-1.0, 1.0))
    actual = np.maximum(counts / counts.sum(), 1e-4)
    expected = np.maximum(np.asarray(reference), 1e-4)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _drift_alerts_on_skewed_reviews(spark: Any, env: Settings, champion: str) -> None:
    """A day of ordinary reviews and a day of one-star reviews: the drift job's PSI of each equals the one computed
    here from Silver's scores and the registry's reference; the skewed day raises one alert, rerun or not."""
    import json
    import random

    from mlflow import MlflowClient

    from lakehouse.config.ml import sentiment_spec
    from lakehouse.kafka.generator import read_reference
    from lakehouse.kafka.generator.review_text import ReviewWriter
    from lakehouse.kafka.producer import EventProducer
    from lakehouse.spark.jobs.sentiment import score_drift

    writer = ReviewWriter(random.Random(5), read_reference("products"))
    skewed = [
        {**m.event, "rating": 1, "review_text": writer.review(m.event["product_id"], 1).text}
        for m in generate("customer_events", 4000, GeneratorOptions(seed=23, start=SKEWED_DAY_START))
        if m.fault is None and m.event is not None and m.event["event_type"] == "review"
    ][:SKEWED_REVIEWS]
    with EventProducer(env) as producer:
        producer.send_events("customer_events", skewed)
    _run(spark, env)

    spec = sentiment_spec()
    tags = MlflowClient(env.mlflow.tracking_uri).get_model_version(env.mlflow.model_name, champion).tags
    reference = json.loads(tags["score_reference"])["shares"]
    assert len(reference) == 10 and sum(reference) == pytest.approx(1.0, abs=1e-5)
    dsn = env.postgres_dsn()
    for _ in range(2):  # a rerun replaces the figures and raises nothing twice
        for day in (DAY, SKEWED_DAY_START.date()):
            score_drift(spark, env, spec, day, dsn)
    silver = spark.read.format("delta").load(env.storage.table_path("silver", "customer_events"))
    with psycopg.connect(dsn) as conn:
        drift = conn.execute(
            "SELECT day, model_version, reviews, psi, alert FROM serving.ml_score_drift ORDER BY day"
        ).fetchall()
        alerts = conn.execute("SELECT kind, model_version, day, value FROM serving.ml_alerts").fetchall()
    assert [(d, v) for d, v, _, _, _ in drift] == [(DAY, champion), (SKEWED_DAY_START.date(), champion)]
    threshold, minimum = spec.monitoring.psi_alert_threshold, spec.monitoring.min_reviews
    for day, _, reviews, psi, alert in drift:
        scores = [
            r["sentiment_score"]
            for r in silver.where(f"event_date = DATE'{day}' AND model_version IS NOT NULL").collect()
        ]
        assert reviews == len(scores)
        assert psi == pytest.approx(_psi(reference, scores), abs=1e-9)
        assert alert == (psi >= threshold and reviews >= minimum)
    ordinary, one_star = drift
    # the ordinary day has fewer reviews than an alert needs; the skewed one drifted far beyond the threshold
    assert ordinary[2] < minimum and not ordinary[4]
    assert one_star[2] == SKEWED_REVIEWS and one_star[4] and one_star[3] > max(ordinary[3], threshold)
    assert alerts == [("score_drift", champion, SKEWED_DAY_START.date(), pytest.approx(one_star[3]))]

    # a BI user (a bi_reader member) reads all of it with the queries docs/ml.md gives
    block = DOCS_ML.read_text().split("## Monitoring\n", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    queries = [q for q in block.split(";") if q.strip()]
    with (
        psycopg.connect(dsn, autocommit=True) as admin,
        login_role(admin, env, "bi_reader", uuid.uuid4().hex[:8]) as reader,
        psycopg.connect(reader) as conn,
    ):
        drift_read, alerts_read, latency_read = (conn.execute(q.encode()).fetchall() for q in queries)
    assert [(day, version) for day, version, *_ in drift_read] == [
        (SKEWED_DAY_START.date(), champion),
        (DAY, champion),
    ]
    assert len(alerts_read) == 1 and len(latency_read) == 2
