-- The model server's latency (lakehouse.ml.latency): one row per server process, time window and model version,
-- written when the window ends (model_serving.latency_window_seconds, 60 s by default) and when the server stops.
-- A latency is measured in the server, from the moment uvicorn hands it a POST /predict to the moment its answer
-- is ready to send; the percentiles are over the requests answered 200. A window that is written again (a retry
-- after a write whose outcome was unknown) replaces its own row.
CREATE TABLE IF NOT EXISTS serving.ml_serving_latency (
    server        text             NOT NULL,
    window_start  timestamptz      NOT NULL,
    window_end    timestamptz      NOT NULL,
    model_name    text             NOT NULL,
    model_version text             NOT NULL,
    requests      integer          NOT NULL,
    texts         integer          NOT NULL,
    errors_4xx    integer          NOT NULL,
    errors_5xx    integer          NOT NULL,
    p50_ms        double precision NULL,
    p95_ms        double precision NULL,
    p99_ms        double precision NULL,
    max_ms        double precision NULL,
    recorded_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (server, window_start, model_name, model_version),
    CONSTRAINT ml_serving_latency_window CHECK (window_start < window_end),
    CONSTRAINT ml_serving_latency_counts CHECK (
        texts >= 0 AND errors_4xx >= 0 AND errors_5xx >= 0 AND requests >= errors_4xx + errors_5xx
    ),
    CONSTRAINT ml_serving_latency_percentiles CHECK (
        (p50_ms IS NULL) = (requests = errors_4xx + errors_5xx)
        AND p50_ms <= p95_ms AND p95_ms <= p99_ms AND p99_ms <= max_ms
    )
);
CREATE INDEX IF NOT EXISTS ml_serving_latency_model_window
    ON serving.ml_serving_latency (model_name, window_start);

COMMENT ON TABLE serving.ml_serving_latency IS
    'Server-side latency of the model server''s POST /predict, one row per server process, window and model version; a window without requests has no row.';
COMMENT ON COLUMN serving.ml_serving_latency.server IS
    'The server process: <host name>:<port>/<process id> (a restarted server is another one).';
COMMENT ON COLUMN serving.ml_serving_latency.window_start IS
    'Start of the window: a multiple of the window length since the epoch, or the server''s start when later.';
COMMENT ON COLUMN serving.ml_serving_latency.window_end IS
    'End of the window (exclusive), or the server''s stop when earlier; a request belongs to the window its answer was ready in.';
COMMENT ON COLUMN serving.ml_serving_latency.model_version IS
    'Registry version that answered (200), or that the server held when it refused the request; empty: it held none (503).';
COMMENT ON COLUMN serving.ml_serving_latency.requests IS
    'POST /predict requests answered, whatever the status (a client that went away before its body was read is not counted).';
COMMENT ON COLUMN serving.ml_serving_latency.texts IS
    'Texts predicted: those of the requests answered 200.';
COMMENT ON COLUMN serving.ml_serving_latency.errors_4xx IS
    'Requests refused as bad input: 400, 413, 415, 422.';
COMMENT ON COLUMN serving.ml_serving_latency.errors_5xx IS
    'Requests the server could not answer: 503 (no model to serve) and 500 (the model failed).';
COMMENT ON COLUMN serving.ml_serving_latency.p50_ms IS
    'Median latency in milliseconds of the requests answered 200 (nearest rank, as p95, p99); null when none was.';
COMMENT ON COLUMN serving.ml_serving_latency.max_ms IS
    'Slowest request answered 200, in milliseconds.';

-- readable like the rest of serving (the default privileges of V003 grant the same; explicit for a table created
-- by another role)
GRANT SELECT ON serving.ml_serving_latency TO bi_reader;
GRANT SELECT, INSERT, UPDATE ON serving.ml_serving_latency TO lakehouse_loader;
