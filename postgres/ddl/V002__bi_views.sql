-- Views for BI tools over the serving tables.
CREATE VIEW serving.v_orders_daily_by_region AS
SELECT
    tenant_id,
    order_date,
    region,
    sum(orders_placed)                                                  AS orders_placed,
    sum(gross_revenue)                                                  AS gross_revenue,
    sum(units)                                                          AS units,
    -- averages do not add up: re-derive from the sums (= the rows' averages weighted by their orders)
    coalesce(round(sum(gross_revenue) / nullif(sum(orders_placed), 0), 2), 0)::numeric(18,2) AS avg_order_value
FROM serving.fct_orders_daily
GROUP BY tenant_id, order_date, region;

COMMENT ON VIEW serving.v_orders_daily_by_region IS 'Daily orders per tenant and region, over all channels and categories.';
COMMENT ON COLUMN serving.v_orders_daily_by_region.tenant_id IS 'Tenant the orders belong to.';
COMMENT ON COLUMN serving.v_orders_daily_by_region.order_date IS 'Day the orders were placed (UTC).';
COMMENT ON COLUMN serving.v_orders_daily_by_region.region IS 'Sales region.';
COMMENT ON COLUMN serving.v_orders_daily_by_region.orders_placed IS 'Orders placed.';
COMMENT ON COLUMN serving.v_orders_daily_by_region.gross_revenue IS 'Total price of the placed orders.';
COMMENT ON COLUMN serving.v_orders_daily_by_region.units IS 'Units ordered.';
COMMENT ON COLUMN serving.v_orders_daily_by_region.avg_order_value IS 'gross_revenue / orders_placed rounded to cents (0 without placed orders).';
