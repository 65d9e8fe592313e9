-- fct_orders_daily's primary key keeps its columns but orders those after (tenant_id, order_date) by falling
-- cardinality: product_category before region and channel. The BI queries (docs/bi_queries.sql) use only the
-- leading (tenant_id, order_date) prefix, so they are served as before; but building the key, which every load
-- does for the day partitions it swaps in, compares fewer columns per pair of rows: within one tenant and day,
-- most pairs already differ in their category, where with region and channel first (4 values each) most
-- comparisons went four text columns deep. Measured on 300,000 rows of one day: 0.37 s instead of 0.58 s.
ALTER TABLE serving.fct_orders_daily DROP CONSTRAINT fct_orders_daily_pkey;
ALTER TABLE serving.fct_orders_daily
    ADD CONSTRAINT fct_orders_daily_pkey PRIMARY KEY (tenant_id, order_date, product_category, region, channel);
