-- fct_orders_daily's column comments name the values the mart really writes (config/marts/fct_orders_daily.yaml):
-- the channels of the order contract (web, mobile, pos; V001 said "web, app, store"), and 'unknown' where
-- a version 1 event has no channel, an order no region, or a product no entry in the products reference data.
COMMENT ON COLUMN serving.fct_orders_daily.channel IS
    'Sales channel the order came through: web, mobile or pos; unknown for version 1 events, which have no channel.';
COMMENT ON COLUMN serving.fct_orders_daily.region IS 'Sales region of the order (unknown if missing).';
COMMENT ON COLUMN serving.fct_orders_daily.product_category IS
    'Category of the product from the products reference data (unknown if the product is not in it).';
