-- The stream deduplicates events newer than its watermark with its own state and checks older ("late") events
-- against Silver; each batch records the watermark it ran with and how many of its events were late.
ALTER TABLE lakehouse_meta.stream_batches
    ADD COLUMN IF NOT EXISTS watermark timestamptz NULL,
    ADD COLUMN IF NOT EXISTS late_rows bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN lakehouse_meta.stream_batches.watermark IS
    'Event-time watermark the batch ran with (null before the first one): accepted events at or before it were checked against Silver.';
COMMENT ON COLUMN lakehouse_meta.stream_batches.late_rows IS
    'Accepted events at or before the watermark: deduplicated against Silver on their own event dates.';
