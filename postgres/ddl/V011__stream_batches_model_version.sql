-- Silver rows of a scored event type carry the sentiment model version that scored them; each batch records the
-- version it scored with, so the batch where a newly promoted champion took over can be found.
ALTER TABLE lakehouse_meta.stream_batches
    ADD COLUMN IF NOT EXISTS model_version text NULL;
COMMENT ON COLUMN lakehouse_meta.stream_batches.model_version IS
    'Version of the registered sentiment model (its champion when the batch ran) that scored the batch''s Silver rows; null: nothing scored.';
