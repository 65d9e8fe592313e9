-- Where a micro-batch's time goes: the writer's own steps (milliseconds of wall time, measured in the foreachBatch
-- handler; steps that run side by side each count their own time) and, once Spark reports the trigger's progress,
-- Spark's durations of the whole trigger (planning, offset and commit logs, the handler as addBatch).
ALTER TABLE lakehouse_meta.stream_batches
    ADD COLUMN IF NOT EXISTS phase_ms jsonb NULL,
    ADD COLUMN IF NOT EXISTS trigger_ms jsonb NULL;
COMMENT ON COLUMN lakehouse_meta.stream_batches.phase_ms IS
    'Wall milliseconds of each step of the batch''s handler, e.g. {"bronze": 2100, "silver": 3400}; writes that run side by side each count their own time.';
COMMENT ON COLUMN lakehouse_meta.stream_batches.trigger_ms IS
    'Spark''s durationMs of the trigger that ran the batch (triggerExecution, queryPlanning, latestOffset, walCommit, addBatch, commitOffsets, ...), recorded when Spark reports its progress.';
