-- What each streaming micro-batch did, one row per (query, checkpoint app id, batch id). The streams upsert it
-- after their data commits (lakehouse.postgres.stream_audit), instead of appending to a Delta audit table: that
-- append was a Delta commit of its own, about a second per batch and query on 2 cores.
CREATE TABLE IF NOT EXISTS lakehouse_meta.stream_batches (
    query             text        NOT NULL,
    app_id            text        NOT NULL,
    batch_id          bigint      NOT NULL,
    layer             text        NOT NULL,
    source            text        NOT NULL,
    status            text        NOT NULL,
    offset_ranges     jsonb       NOT NULL,
    input_rows        bigint      NOT NULL,
    output_rows       bigint      NOT NULL,
    dead_letter_rows  bigint      NOT NULL,
    quarantined_rows  bigint      NOT NULL,
    deduplicated_rows bigint      NOT NULL,
    min_event_time    timestamptz NULL,
    max_event_time    timestamptz NULL,
    started_at        timestamptz NULL,
    finished_at       timestamptz NULL,
    processing_ms     bigint      NOT NULL,
    source_lag_ms     bigint      NULL,
    PRIMARY KEY (query, app_id, batch_id)
);
COMMENT ON TABLE lakehouse_meta.stream_batches IS
    'One row per streaming micro-batch and query; a replayed batch replaces its row (same query, app id, batch id).';
COMMENT ON COLUMN lakehouse_meta.stream_batches.app_id IS
    'Id stored in the query''s checkpoint (lakehouse_app_id): a new checkpoint restarts batch ids under a new app id.';
COMMENT ON COLUMN lakehouse_meta.stream_batches.offset_ranges IS 'First and last offset of each Kafka partition read (Bronze).';
COMMENT ON COLUMN lakehouse_meta.stream_batches.source_lag_ms IS 'finished_at minus the newest event (Kafka) time of the batch.';

GRANT SELECT, INSERT, UPDATE ON lakehouse_meta.stream_batches TO lakehouse_loader;
