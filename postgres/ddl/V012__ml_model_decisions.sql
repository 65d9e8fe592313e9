-- The sentiment model's promotion gate (lakehouse.ml.promotion): one row per candidate, keyed by its MLflow run,
-- with the holdout macro-F1 of the candidate, of the champion it was compared with and of the lexicon baseline,
-- the margins it needed, and whether it became the registry's champion. A rerun of the gate for the same run
-- finds its row and decides nothing again.
CREATE TABLE IF NOT EXISTS serving.ml_model_decisions (
    run_id                  text             PRIMARY KEY,
    model_name              text             NOT NULL,
    candidate_version       text             NOT NULL,
    champion_version_before text             NULL,
    candidate_macro_f1      double precision NOT NULL,
    champion_macro_f1       double precision NULL,
    baseline_macro_f1       double precision NOT NULL,
    min_gain_over_champion  double precision NOT NULL,
    min_gain_over_baseline  double precision NOT NULL,
    holdout_rows            integer          NOT NULL,
    training_set_version    bigint           NOT NULL,
    promoted                boolean          NOT NULL,
    reason                  text             NOT NULL,
    decided_at              timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT ml_model_decisions_champion_scored
        CHECK ((champion_version_before IS NULL) = (champion_macro_f1 IS NULL))
);
CREATE INDEX IF NOT EXISTS ml_model_decisions_model_decided
    ON serving.ml_model_decisions (model_name, decided_at DESC);

COMMENT ON TABLE serving.ml_model_decisions IS
    'Promotion gate decisions of the sentiment model, one per candidate (MLflow run id); promoted = the champion alias moved to it.';
COMMENT ON COLUMN serving.ml_model_decisions.champion_version_before IS
    'Registry version the champion alias pointed to when the gate ran (null: no champion yet).';
COMMENT ON COLUMN serving.ml_model_decisions.baseline_macro_f1 IS
    'Macro-F1 of the VADER lexicon baseline on the same holdout.';
COMMENT ON COLUMN serving.ml_model_decisions.training_set_version IS
    'Delta version of gold review_training_set the candidate was trained and every model evaluated on.';

-- readable like the rest of serving (the default privileges of V003 grant the same; explicit for a table created
-- by another role)
GRANT SELECT ON serving.ml_model_decisions TO bi_reader;
GRANT SELECT, INSERT, UPDATE ON serving.ml_model_decisions TO lakehouse_loader;
