-- BI queries over the serving schema. The benchmark (make bench) runs each with random parameters and reports
-- p50/p95 latency; indexes in postgres/ddl exist for exactly these access paths. The serving tables are
-- partitioned by day: filter on the date column with values known when the query is planned.

-- name: tenant_revenue_by_region_last_7_days
SELECT region, sum(orders_placed) AS orders, sum(gross_revenue) AS revenue
FROM serving.fct_orders_daily
WHERE tenant_id = %(tenant)s AND order_date BETWEEN %(day)s::date - 6 AND %(day)s::date
GROUP BY region ORDER BY revenue DESC;

-- name: tenant_daily_trend_30_days
SELECT order_date, sum(orders_placed) AS orders, sum(gross_revenue) AS revenue,
       round(sum(gross_revenue) / nullif(sum(orders_placed), 0), 2) AS avg_order_value
FROM serving.fct_orders_daily
WHERE tenant_id = %(tenant)s AND order_date BETWEEN %(day)s::date - 29 AND %(day)s::date
GROUP BY order_date ORDER BY order_date;

-- name: top_categories_one_day_all_tenants
SELECT product_category, sum(gross_revenue) AS revenue, sum(units) AS units
FROM serving.fct_orders_daily
WHERE order_date = %(day)s::date
GROUP BY product_category ORDER BY revenue DESC LIMIT 10;

-- name: tenant_channel_mix_month
-- Month bounds as dates from a timestamp (not timestamptz, which date_trunc would pick for a date and which
-- depends on the session's time zone): constants when planned, so only the month's day partitions are opened.
SELECT channel, sum(orders_placed) AS orders, sum(orders_cancelled) AS cancelled,
       sum(gross_revenue) - sum(cancelled_revenue) AS net_revenue
FROM serving.fct_orders_daily
WHERE tenant_id = %(tenant)s AND order_date >= date_trunc('month', %(day)s::timestamp)::date
  AND order_date < (date_trunc('month', %(day)s::timestamp) + interval '1 month')::date
GROUP BY channel;
