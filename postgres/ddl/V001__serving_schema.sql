-- The serving schema: the tables BI tools and the loader use.
CREATE SCHEMA IF NOT EXISTS serving;
COMMENT ON SCHEMA serving IS 'Gold marts served to BI, loaded from the Delta lake by lakehouse.postgres.loader.';

CREATE TABLE serving.fct_orders_daily (
    tenant_id         text          NOT NULL,
    order_date        date          NOT NULL,
    region            text          NOT NULL,
    channel           text          NOT NULL,
    product_category  text          NOT NULL,
    orders_placed     bigint,
    orders_cancelled  bigint,
    units             bigint,
    gross_revenue     numeric(18,2),
    cancelled_revenue numeric(18,2),
    avg_order_value   numeric(18,2),
    unique_customers  bigint,
    CONSTRAINT fct_orders_daily_pkey PRIMARY KEY (tenant_id, order_date, region, channel, product_category)
);
-- BI filters on a date range first, then on a tenant; the loader's interval DELETE uses it too.
CREATE INDEX fct_orders_daily_date_tenant_idx ON serving.fct_orders_daily (order_date, tenant_id);

COMMENT ON TABLE serving.fct_orders_daily IS
    'Daily order facts. Grain: tenant, order date, region, channel, product category. '
    'Loaded per date interval from the Gold Delta table fct_orders_daily; a reload replaces the interval.';
COMMENT ON COLUMN serving.fct_orders_daily.tenant_id IS 'Tenant (customer organisation) the orders belong to.';
COMMENT ON COLUMN serving.fct_orders_daily.order_date IS 'Day the orders were placed (UTC).';
COMMENT ON COLUMN serving.fct_orders_daily.region IS 'Sales region of the order.';
COMMENT ON COLUMN serving.fct_orders_daily.channel IS 'Sales channel the order came through (web, app, store, ...).';
COMMENT ON COLUMN serving.fct_orders_daily.product_category IS 'Category of the products ordered.';
COMMENT ON COLUMN serving.fct_orders_daily.orders_placed IS 'Number of orders placed.';
COMMENT ON COLUMN serving.fct_orders_daily.orders_cancelled IS 'Number of orders cancelled.';
COMMENT ON COLUMN serving.fct_orders_daily.units IS 'Units ordered in the placed orders.';
COMMENT ON COLUMN serving.fct_orders_daily.gross_revenue IS 'Total price of the placed orders, before cancellations.';
COMMENT ON COLUMN serving.fct_orders_daily.cancelled_revenue IS 'Total price of the cancelled orders.';
COMMENT ON COLUMN serving.fct_orders_daily.avg_order_value IS 'gross_revenue / orders_placed rounded to cents (0 without placed orders).';
COMMENT ON COLUMN serving.fct_orders_daily.unique_customers IS
    'Distinct customers who placed an order; not additive across rows.';

CREATE TABLE serving.freshness (
    mart             text        NOT NULL,
    interval_start   date        NOT NULL,
    interval_end     date        NOT NULL,
    rows             bigint      NOT NULL,
    silver_watermark timestamptz NULL,
    loaded_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT freshness_pkey PRIMARY KEY (mart, interval_start, interval_end)
);
COMMENT ON TABLE serving.freshness IS 'One row per mart and loaded date interval: what was loaded, and when.';
COMMENT ON COLUMN serving.freshness.mart IS 'Mart name (config/marts/<mart>.yaml).';
COMMENT ON COLUMN serving.freshness.interval_start IS 'First day of the loaded interval (inclusive).';
COMMENT ON COLUMN serving.freshness.interval_end IS 'Day after the last day of the loaded interval (exclusive).';
COMMENT ON COLUMN serving.freshness.rows IS 'Rows the interval holds after the load.';
COMMENT ON COLUMN serving.freshness.silver_watermark IS 'Latest Silver event time the Gold rows were built from, if known.';
COMMENT ON COLUMN serving.freshness.loaded_at IS 'When the load committed.';

CREATE TABLE serving.load_alerts (
    id         bigserial   PRIMARY KEY,
    dag_id     text        NOT NULL,
    task_id    text        NOT NULL,
    run_id     text        NOT NULL,
    mart       text        NULL,
    reason     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX load_alerts_created_at_idx ON serving.load_alerts (created_at);
COMMENT ON TABLE serving.load_alerts IS 'Failed Airflow tasks and failed data-quality gates, newest last.';
COMMENT ON COLUMN serving.load_alerts.id IS 'Surrogate key.';
COMMENT ON COLUMN serving.load_alerts.dag_id IS 'Airflow DAG of the failed task.';
COMMENT ON COLUMN serving.load_alerts.task_id IS 'Airflow task that failed.';
COMMENT ON COLUMN serving.load_alerts.run_id IS 'Airflow DAG run.';
COMMENT ON COLUMN serving.load_alerts.mart IS 'Mart concerned, if any.';
COMMENT ON COLUMN serving.load_alerts.reason IS 'What failed and why (error message or failed check).';
COMMENT ON COLUMN serving.load_alerts.created_at IS 'When the failure was recorded.';
