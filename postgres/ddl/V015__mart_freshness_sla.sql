-- Each mart's freshness SLA: how old its latest load may be, from its contract (config/marts/<mart>.yaml:
-- freshness_sla_minutes). Every load of a mart with an SLA writes it here (lakehouse.postgres.loader.record_sla),
-- so a changed contract takes effect at the mart's next load.
CREATE TABLE IF NOT EXISTS serving.mart_sla (
    mart        text    PRIMARY KEY,
    sla_minutes integer NOT NULL CHECK (sla_minutes > 0)
);
COMMENT ON TABLE serving.mart_sla IS 'Freshness SLA per mart, from its contract; written by its loads.';
COMMENT ON COLUMN serving.mart_sla.sla_minutes IS 'The latest load may be at most this many minutes old.';

-- Per mart: its latest load, its age now, its SLA and whether the latest load is older than the SLA (NULL when the
-- mart has no SLA). The Pipeline health dashboard reads it.
CREATE OR REPLACE VIEW serving.v_mart_freshness AS
SELECT f.mart,
       f.latest_loaded_at,
       f.silver_watermark,
       f.latest_interval_end,
       round(extract(EPOCH FROM now() - f.latest_loaded_at) / 60)::integer AS age_minutes,
       s.sla_minutes,
       now() - f.latest_loaded_at > make_interval(mins => s.sla_minutes) AS over_sla
FROM (
    SELECT mart, max(loaded_at) AS latest_loaded_at, max(silver_watermark) AS silver_watermark,
           max(interval_end) AS latest_interval_end
    FROM serving.freshness
    GROUP BY mart
) f
LEFT JOIN serving.mart_sla s USING (mart);
COMMENT ON VIEW serving.v_mart_freshness IS
    'Per mart: the latest load, its age in minutes, the SLA and whether the latest load is over it.';
