-- A rollup of fct_orders_daily per tenant, day and channel, for the Revenue dashboard's daily and channel charts:
-- 1/32 of the fact table's rows at the benchmark's shape. The load that replaces an interval of the facts replaces
-- the same interval here, in the same transaction (rollups: in config/marts/fct_orders_daily.yaml).
CREATE TABLE serving.fct_orders_daily_by_channel (
    tenant_id          text          NOT NULL,
    order_date         date          NOT NULL,
    channel            text          NOT NULL,
    orders_placed      bigint        NOT NULL,
    orders_cancelled   bigint        NOT NULL,
    units              bigint        NOT NULL,
    gross_revenue      numeric(18,2) NOT NULL,
    cancelled_revenue  numeric(18,2) NOT NULL,
    orders_with_coupon bigint        NOT NULL,
    CONSTRAINT fct_orders_daily_by_channel_pkey PRIMARY KEY (tenant_id, order_date, channel)
);
CREATE INDEX fct_orders_daily_by_channel_date_idx ON serving.fct_orders_daily_by_channel (order_date);
COMMENT ON TABLE serving.fct_orders_daily_by_channel IS
    'fct_orders_daily summed per tenant, order date and channel; replaced with the facts'' interval by each load.';
COMMENT ON COLUMN serving.fct_orders_daily_by_channel.orders_with_coupon IS
    'Placed orders that used a coupon code.';

-- rows loaded before this table existed
INSERT INTO serving.fct_orders_daily_by_channel
SELECT tenant_id, order_date, channel, sum(orders_placed), sum(orders_cancelled), sum(units), sum(gross_revenue),
       sum(cancelled_revenue), sum(orders_with_coupon)
FROM serving.fct_orders_daily
GROUP BY tenant_id, order_date, channel;

GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON serving.fct_orders_daily_by_channel TO lakehouse_loader;
GRANT SELECT ON serving.fct_orders_daily_by_channel TO bi_reader;
