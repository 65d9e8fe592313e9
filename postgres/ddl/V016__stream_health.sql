-- What BI reads of the streams' accounting (bi_reader sees only serving): per hour (UTC) and streaming query, the
-- micro-batches that finished, the rows read, landed, dead-lettered, quarantined and deduplicated, the share of
-- the rows read that each fault class took, and how far behind the source the batches were.
CREATE OR REPLACE VIEW serving.v_stream_health AS
SELECT date_trunc('hour', finished_at)                                               AS hour,
       query,
       layer,
       count(*)                                                                      AS batches,
       sum(input_rows)                                                               AS input_rows,
       sum(output_rows)                                                              AS output_rows,
       sum(dead_letter_rows)                                                         AS dead_letter_rows,
       sum(quarantined_rows)                                                         AS quarantined_rows,
       sum(deduplicated_rows)                                                        AS deduplicated_rows,
       sum(dead_letter_rows)::double precision / nullif(sum(input_rows), 0)          AS dead_letter_share,
       sum(quarantined_rows)::double precision / nullif(sum(input_rows), 0)          AS quarantined_share,
       max(source_lag_ms) / 1000.0                                                   AS max_source_lag_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY source_lag_ms) / 1000.0          AS p95_source_lag_s,
       max(finished_at)                                                              AS latest_batch_at
FROM lakehouse_meta.stream_batches
WHERE finished_at IS NOT NULL
GROUP BY 1, 2, 3;
COMMENT ON VIEW serving.v_stream_health IS
    'Per hour and streaming query: batches, rows read and where they went, fault shares and source lag.';
