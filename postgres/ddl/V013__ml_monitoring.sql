-- Monitoring of the sentiment model (docs/ml.md#monitoring).
--
-- Prediction drift (lakehouse-job sentiment drift): one row per day and model version, the PSI of the scores the
-- version gave that day's reviews against the scores of its training set's holdout. A rerun for the same day
-- replaces its rows.
CREATE TABLE IF NOT EXISTS serving.ml_score_drift (
    day                 date             NOT NULL,
    model_name          text             NOT NULL,
    model_version       text             NOT NULL,
    reviews             bigint           NOT NULL,
    psi                 double precision NULL,
    psi_alert_threshold double precision NOT NULL,
    min_reviews         integer          NOT NULL,
    alert               boolean          NOT NULL,
    bin_counts          jsonb            NOT NULL,
    reference_shares    jsonb            NULL,
    computed_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, model_version, day)
);
COMMENT ON TABLE serving.ml_score_drift IS
    'Daily prediction drift of each sentiment model version: PSI of the day''s scores against its training set''s.';
COMMENT ON COLUMN serving.ml_score_drift.psi IS
    'Population stability index over 10 equal bins of sentiment_score in [-1, 1]; null: the version has no training reference.';
COMMENT ON COLUMN serving.ml_score_drift.alert IS
    'psi >= psi_alert_threshold on a day with at least min_reviews scored reviews (an alert row is in ml_alerts).';

-- Alerts of the ML loop, one per (kind, model, version, day): a rerun does not raise the same alert twice.
CREATE TABLE IF NOT EXISTS serving.ml_alerts (
    alert_id      bigserial        PRIMARY KEY,
    kind          text             NOT NULL,
    model_name    text             NOT NULL,
    model_version text             NOT NULL,
    day           date             NOT NULL,
    value         double precision NOT NULL,
    threshold     double precision NOT NULL,
    message       text             NOT NULL,
    raised_at     timestamptz      NOT NULL DEFAULT now(),
    UNIQUE (kind, model_name, model_version, day)
);
COMMENT ON TABLE serving.ml_alerts IS 'Alerts of the sentiment model''s monitoring (kind ''score_drift'': PSI over its threshold).';

-- Scoring time in the stream: each micro-batch records how long its scoring UDF ran and how many reviews it scored.
ALTER TABLE lakehouse_meta.stream_batches
    ADD COLUMN IF NOT EXISTS scored_rows bigint NULL,
    ADD COLUMN IF NOT EXISTS scoring_ms double precision NULL;
COMMENT ON COLUMN lakehouse_meta.stream_batches.scored_rows IS 'Reviews the sentiment model scored in the batch.';
COMMENT ON COLUMN lakehouse_meta.stream_batches.scoring_ms IS
    'Wall time of the scoring UDF over the batch''s Arrow batches, summed over the executors'' Python workers.';

-- What BI reads of it (bi_reader sees only serving): per day and model version, the batches that scored, the
-- reviews, and the per-review scoring time of the batches (p50, p95, max).
CREATE OR REPLACE VIEW serving.ml_stream_scoring_latency AS
SELECT (finished_at AT TIME ZONE 'UTC')::date                                        AS day,
       query,
       model_version,
       count(*)                                                                     AS batches,
       sum(scored_rows)                                                             AS reviews,
       sum(scoring_ms)                                                              AS scoring_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY scoring_ms / scored_rows)        AS p50_ms_per_review,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY scoring_ms / scored_rows)       AS p95_ms_per_review,
       max(scoring_ms / scored_rows)                                                AS max_ms_per_review,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY scoring_ms)                     AS p95_ms_per_batch
FROM lakehouse_meta.stream_batches
WHERE scored_rows > 0
GROUP BY 1, 2, 3;
COMMENT ON VIEW serving.ml_stream_scoring_latency IS
    'Sentiment scoring time in the stream per day, query and model version, from the micro-batch audit.';

GRANT SELECT ON serving.ml_score_drift, serving.ml_alerts, serving.ml_stream_scoring_latency TO bi_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON serving.ml_score_drift, serving.ml_alerts TO lakehouse_loader;
GRANT USAGE ON SEQUENCE serving.ml_alerts_alert_id_seq TO lakehouse_loader;
