-- Where a micro-batch's time goes: the wall time of each step of the stream's handler, in milliseconds (steps that
-- run side by side each count their own time).
ALTER TABLE lakehouse_meta.stream_batches
    ADD COLUMN IF NOT EXISTS phase_ms jsonb NULL;
COMMENT ON COLUMN lakehouse_meta.stream_batches.phase_ms IS
    'Wall milliseconds of each step of the batch''s handler, e.g. {"bronze": 2100, "silver": 3400}; writes that run side by side each count their own time.';
