-- Results of the DQ gate of every Gold build, read by the Airflow dq_gate task before a load.
CREATE TABLE IF NOT EXISTS lakehouse_meta.gold_checks (
    mart            text        NOT NULL,
    interval_start  date        NOT NULL,
    interval_end    date        NOT NULL,
    built_dates     date[]      NOT NULL,
    gold_rows       bigint      NOT NULL,
    silver_rows     bigint      NOT NULL,
    silver_watermark timestamptz NULL,
    problems        text[]      NOT NULL,
    checked_at      timestamptz NOT NULL DEFAULT now(),
    loaded_at       timestamptz NULL,
    PRIMARY KEY (mart, interval_start, interval_end)
);
COMMENT ON TABLE lakehouse_meta.gold_checks IS 'Latest DQ gate result per mart and interval (written by the Gold build).';
COMMENT ON COLUMN lakehouse_meta.gold_checks.built_dates IS 'Dates the build replaced: the interval plus days touched by late Silver rows.';
COMMENT ON COLUMN lakehouse_meta.gold_checks.silver_watermark IS 'Max Silver ingest time seen by the build; the next build picks up later rows.';
COMMENT ON COLUMN lakehouse_meta.gold_checks.problems IS 'Empty when the gate passed; otherwise every failed check.';
COMMENT ON COLUMN lakehouse_meta.gold_checks.loaded_at IS 'Set when the built dates were loaded into serving; only loaded builds advance the watermark.';

GRANT USAGE ON SCHEMA lakehouse_meta TO lakehouse_loader;
GRANT SELECT, INSERT, UPDATE ON lakehouse_meta.gold_checks TO lakehouse_loader;
