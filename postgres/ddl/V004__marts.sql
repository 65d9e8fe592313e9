-- Serving tables of the Gold marts in config/marts/ besides fct_orders_daily, and BI views over them.
-- Each table's columns are the Gold table's columns, in the same order; the primary key is the mart's grain.
-- Interval marts are replaced per date interval of their date column; dimensions (load_mode: full) as a whole.

-- order_revenue_5min ---------------------------------------------------------------------------------------
CREATE TABLE serving.order_revenue_5min (
    tenant_id        text          NOT NULL,
    window_date      date          NOT NULL,
    window_start     timestamptz   NOT NULL,
    window_end       timestamptz   NOT NULL,
    region           text          NOT NULL,
    product_category text          NOT NULL,
    orders_placed    bigint,
    units_sold       bigint,
    total_revenue    numeric(18,2),
    avg_order_value  numeric(18,2),
    unique_customers bigint,
    CONSTRAINT order_revenue_5min_pkey PRIMARY KEY (tenant_id, window_date, window_start, region, product_category)
);
-- the primary key serves "one tenant, a time range"; this one "all tenants, a date range" and the loader's DELETE
CREATE INDEX order_revenue_5min_date_tenant_idx ON serving.order_revenue_5min (window_date, tenant_id);

COMMENT ON TABLE serving.order_revenue_5min IS
    'Placed orders in 5-minute event-time windows. Grain: tenant, window, region, product category. '
    'A late event updates its window when the window''s day is rebuilt (every daily run rebuilds its day).';
COMMENT ON COLUMN serving.order_revenue_5min.tenant_id IS 'Tenant (customer organisation) the orders belong to.';
COMMENT ON COLUMN serving.order_revenue_5min.window_date IS 'Day (UTC) of the window; the load interval column.';
COMMENT ON COLUMN serving.order_revenue_5min.window_start IS 'Start of the 5-minute event-time window (inclusive).';
COMMENT ON COLUMN serving.order_revenue_5min.window_end IS 'End of the 5-minute event-time window (exclusive).';
COMMENT ON COLUMN serving.order_revenue_5min.region IS 'Sales region of the order (unknown if missing).';
COMMENT ON COLUMN serving.order_revenue_5min.product_category IS
    'Category of the product from the products reference data (unknown if the product is not in it).';
COMMENT ON COLUMN serving.order_revenue_5min.orders_placed IS 'Distinct orders placed in the window.';
COMMENT ON COLUMN serving.order_revenue_5min.units_sold IS 'Units in the placed orders.';
COMMENT ON COLUMN serving.order_revenue_5min.total_revenue IS 'Total price of the placed orders.';
COMMENT ON COLUMN serving.order_revenue_5min.avg_order_value IS 'total_revenue / orders_placed rounded to cents.';
COMMENT ON COLUMN serving.order_revenue_5min.unique_customers IS
    'Distinct customers who placed an order in the window; not additive across rows.';

-- customer_behavior_daily ----------------------------------------------------------------------------------
CREATE TABLE serving.customer_behavior_daily (
    tenant_id      text             NOT NULL,
    activity_date  date             NOT NULL,
    customer_id    text             NOT NULL,
    page_views     bigint,
    cart_adds      bigint,
    orders         bigint,
    revenue        numeric(18,2),
    reviews        bigint,
    avg_rating     double precision,
    first_event_at timestamptz,
    last_event_at  timestamptz,
    CONSTRAINT customer_behavior_daily_pkey PRIMARY KEY (tenant_id, activity_date, customer_id)
);
CREATE INDEX customer_behavior_daily_date_tenant_idx ON serving.customer_behavior_daily (activity_date, tenant_id);
-- one customer's history (customer 360)
CREATE INDEX customer_behavior_daily_customer_idx ON serving.customer_behavior_daily (customer_id, activity_date);

COMMENT ON TABLE serving.customer_behavior_daily IS
    'Daily activity of each customer from the click-stream and the orders. Grain: tenant, day, customer '
    '(only customers with an event that day).';
COMMENT ON COLUMN serving.customer_behavior_daily.tenant_id IS 'Tenant the customer belongs to.';
COMMENT ON COLUMN serving.customer_behavior_daily.activity_date IS 'Day (UTC) of the activity; the load interval column.';
COMMENT ON COLUMN serving.customer_behavior_daily.customer_id IS 'Customer.';
COMMENT ON COLUMN serving.customer_behavior_daily.page_views IS 'Page views (page_view events).';
COMMENT ON COLUMN serving.customer_behavior_daily.cart_adds IS 'Products added to the cart (add_to_cart events).';
COMMENT ON COLUMN serving.customer_behavior_daily.orders IS 'Distinct orders placed.';
COMMENT ON COLUMN serving.customer_behavior_daily.revenue IS 'Total price of the placed orders (0 without orders).';
COMMENT ON COLUMN serving.customer_behavior_daily.reviews IS 'Reviews written (review events).';
COMMENT ON COLUMN serving.customer_behavior_daily.avg_rating IS 'Average rating of the reviews (1..5); NULL without reviews.';
COMMENT ON COLUMN serving.customer_behavior_daily.first_event_at IS 'First click-stream or order event of the day.';
COMMENT ON COLUMN serving.customer_behavior_daily.last_event_at IS 'Last click-stream or order event of the day.';

-- product_reviews_daily ------------------------------------------------------------------------------------
CREATE TABLE serving.product_reviews_daily (
    tenant_id       text             NOT NULL,
    review_date     date             NOT NULL,
    product_id      text             NOT NULL,
    review_count    bigint,
    avg_rating      double precision,
    positive_share  double precision,
    negative_share  double precision,
    sentiment_score double precision,
    CONSTRAINT product_reviews_daily_pkey PRIMARY KEY (tenant_id, review_date, product_id)
);
CREATE INDEX product_reviews_daily_date_tenant_idx ON serving.product_reviews_daily (review_date, tenant_id);
CREATE INDEX product_reviews_daily_product_idx ON serving.product_reviews_daily (product_id, review_date);

COMMENT ON TABLE serving.product_reviews_daily IS 'Product reviews per day. Grain: tenant, day, product.';
COMMENT ON COLUMN serving.product_reviews_daily.tenant_id IS 'Tenant the reviewing customers belong to.';
COMMENT ON COLUMN serving.product_reviews_daily.review_date IS 'Day (UTC) of the reviews; the load interval column.';
COMMENT ON COLUMN serving.product_reviews_daily.product_id IS 'Reviewed product (unknown for reviews without a product).';
COMMENT ON COLUMN serving.product_reviews_daily.review_count IS 'Number of reviews.';
COMMENT ON COLUMN serving.product_reviews_daily.avg_rating IS 'Average rating (1..5).';
COMMENT ON COLUMN serving.product_reviews_daily.positive_share IS 'Share of reviews rated 4 or 5 (0..1).';
COMMENT ON COLUMN serving.product_reviews_daily.negative_share IS 'Share of reviews rated 1 or 2 (0..1).';
COMMENT ON COLUMN serving.product_reviews_daily.sentiment_score IS
    'Sentiment of the review texts, for the model that comes later; NULL until then.';

-- customer_features ----------------------------------------------------------------------------------------
CREATE TABLE serving.customer_features (
    tenant_id     text             NOT NULL,
    as_of_date    date             NOT NULL,
    customer_id   text             NOT NULL,
    recency_days  integer,
    orders_30d    bigint,
    monetary_30d  numeric(18,2),
    page_views_7d bigint,
    cart_adds_7d  bigint,
    avg_rating    double precision,
    last_seen_at  timestamptz,
    CONSTRAINT customer_features_pkey PRIMARY KEY (tenant_id, as_of_date, customer_id)
);
CREATE INDEX customer_features_date_tenant_idx ON serving.customer_features (as_of_date, tenant_id);
CREATE INDEX customer_features_customer_idx ON serving.customer_features (customer_id, as_of_date);

COMMENT ON TABLE serving.customer_features IS
    'Customer features as of the end of each day d, over the 30 days [d-29, d]. Grain: tenant, as-of day, '
    'customer (only customers with an event in those 30 days).';
COMMENT ON COLUMN serving.customer_features.tenant_id IS 'Tenant the customer belongs to.';
COMMENT ON COLUMN serving.customer_features.as_of_date IS 'Day d the features describe (events up to its end); the load interval column.';
COMMENT ON COLUMN serving.customer_features.customer_id IS 'Customer.';
COMMENT ON COLUMN serving.customer_features.recency_days IS 'Days from the last placed order to d; NULL without an order in the 30 days.';
COMMENT ON COLUMN serving.customer_features.orders_30d IS 'Distinct orders placed in [d-29, d].';
COMMENT ON COLUMN serving.customer_features.monetary_30d IS 'Total price of the orders placed in [d-29, d].';
COMMENT ON COLUMN serving.customer_features.page_views_7d IS 'Page views in [d-6, d].';
COMMENT ON COLUMN serving.customer_features.cart_adds_7d IS 'Cart adds (add_to_cart events) in [d-6, d].';
COMMENT ON COLUMN serving.customer_features.avg_rating IS 'Average rating of the reviews in [d-29, d]; NULL without reviews.';
COMMENT ON COLUMN serving.customer_features.last_seen_at IS 'Latest click-stream or order event up to the end of d.';

-- device_metrics_minute ------------------------------------------------------------------------------------
CREATE TABLE serving.device_metrics_minute (
    tenant_id    text             NOT NULL,
    metric_date  date             NOT NULL,
    minute_start timestamptz      NOT NULL,
    device_id    text             NOT NULL,
    metric       text             NOT NULL,
    readings     bigint,
    min_value    double precision,
    max_value    double precision,
    avg_value    double precision,
    CONSTRAINT device_metrics_minute_pkey PRIMARY KEY (tenant_id, metric_date, minute_start, device_id, metric)
);
CREATE INDEX device_metrics_minute_date_tenant_idx ON serving.device_metrics_minute (metric_date, tenant_id);
-- one device's time series
CREATE INDEX device_metrics_minute_device_idx ON serving.device_metrics_minute (device_id, metric, minute_start);

COMMENT ON TABLE serving.device_metrics_minute IS 'IoT sensor readings per minute. Grain: tenant, minute, device, metric.';
COMMENT ON COLUMN serving.device_metrics_minute.tenant_id IS 'Tenant (store operator) the device belongs to.';
COMMENT ON COLUMN serving.device_metrics_minute.metric_date IS 'Day (UTC) of the minute; the load interval column.';
COMMENT ON COLUMN serving.device_metrics_minute.minute_start IS 'Start of the event-time minute.';
COMMENT ON COLUMN serving.device_metrics_minute.device_id IS 'Sensor device.';
COMMENT ON COLUMN serving.device_metrics_minute.metric IS 'Measured quantity: temperature (C), humidity (%), pressure (hPa) or battery (%).';
COMMENT ON COLUMN serving.device_metrics_minute.readings IS 'Number of readings in the minute.';
COMMENT ON COLUMN serving.device_metrics_minute.min_value IS 'Lowest reading of the minute.';
COMMENT ON COLUMN serving.device_metrics_minute.max_value IS 'Highest reading of the minute.';
COMMENT ON COLUMN serving.device_metrics_minute.avg_value IS 'Average reading of the minute.';

-- dim_product ----------------------------------------------------------------------------------------------
CREATE TABLE serving.dim_product (
    product_id text          NOT NULL,
    name       text,
    category   text,
    brand      text,
    list_price numeric(12,2),
    valid_from date          NOT NULL,
    CONSTRAINT dim_product_pkey PRIMARY KEY (product_id)
);
CREATE INDEX dim_product_category_idx ON serving.dim_product (category);

COMMENT ON TABLE serving.dim_product IS
    'Current products of the products reference data. Grain: product. Replaced as a whole on every load.';
COMMENT ON COLUMN serving.dim_product.product_id IS 'Product key (P0001..).';
COMMENT ON COLUMN serving.dim_product.name IS 'Product name.';
COMMENT ON COLUMN serving.dim_product.category IS 'Product category.';
COMMENT ON COLUMN serving.dim_product.brand IS 'Brand.';
COMMENT ON COLUMN serving.dim_product.list_price IS 'List price in USD.';
COMMENT ON COLUMN serving.dim_product.valid_from IS 'Date the current values of the product took effect.';

-- dim_customer ---------------------------------------------------------------------------------------------
CREATE TABLE serving.dim_customer (
    customer_id text    NOT NULL,
    tenant_id   text    NOT NULL,
    segment     text,
    country     text,
    signup_date date,
    valid_from  date    NOT NULL,
    valid_to    date,
    is_current  boolean NOT NULL,
    CONSTRAINT dim_customer_pkey PRIMARY KEY (customer_id, valid_from),
    CONSTRAINT dim_customer_valid_range CHECK (valid_to IS NULL OR valid_to > valid_from)
);
-- at most one current row per customer; also the access path of "current attributes of these customers"
CREATE UNIQUE INDEX dim_customer_current_idx ON serving.dim_customer (customer_id) WHERE is_current;
CREATE INDEX dim_customer_tenant_idx ON serving.dim_customer (tenant_id, customer_id);

COMMENT ON TABLE serving.dim_customer IS
    'Customers with history (SCD type 2): a new row when segment or country changes. Grain: customer, '
    'valid_from. Replaced as a whole on every load.';
COMMENT ON COLUMN serving.dim_customer.customer_id IS 'Customer key (tenant_01-C0001..).';
COMMENT ON COLUMN serving.dim_customer.tenant_id IS 'Tenant the customer belongs to.';
COMMENT ON COLUMN serving.dim_customer.segment IS 'consumer, small_business or enterprise.';
COMMENT ON COLUMN serving.dim_customer.country IS 'Country, ISO 3166-1 alpha-2.';
COMMENT ON COLUMN serving.dim_customer.signup_date IS 'Day the customer signed up.';
COMMENT ON COLUMN serving.dim_customer.valid_from IS 'Date of the reference version that introduced these values (inclusive).';
COMMENT ON COLUMN serving.dim_customer.valid_to IS 'Date of the reference version that replaced them (exclusive); NULL for the current row.';
COMMENT ON COLUMN serving.dim_customer.is_current IS 'True for the row of the latest reference version.';

-- dim_date -------------------------------------------------------------------------------------------------
CREATE TABLE serving.dim_date (
    date_key    date    NOT NULL,
    year        integer NOT NULL,
    quarter     integer NOT NULL,
    month       integer NOT NULL,
    day         integer NOT NULL,
    iso_year    integer NOT NULL,
    iso_week    integer NOT NULL,
    day_of_week integer NOT NULL,
    is_weekend  boolean NOT NULL,
    month_name  text    NOT NULL,
    CONSTRAINT dim_date_pkey PRIMARY KEY (date_key)
);

COMMENT ON TABLE serving.dim_date IS 'Calendar, one row per day 2024-01-01..2027-12-31. Grain: day. Replaced as a whole on every load.';
COMMENT ON COLUMN serving.dim_date.date_key IS 'The day; join it to the date columns of the facts.';
COMMENT ON COLUMN serving.dim_date.year IS 'Calendar year.';
COMMENT ON COLUMN serving.dim_date.quarter IS 'Calendar quarter (1..4).';
COMMENT ON COLUMN serving.dim_date.month IS 'Month (1..12).';
COMMENT ON COLUMN serving.dim_date.day IS 'Day of the month (1..31).';
COMMENT ON COLUMN serving.dim_date.iso_year IS 'ISO 8601 week-numbering year (differs from year around New Year); group ISO weeks by it.';
COMMENT ON COLUMN serving.dim_date.iso_week IS 'ISO 8601 week of iso_year (1..53).';
COMMENT ON COLUMN serving.dim_date.day_of_week IS 'ISO day of the week: 1 = Monday .. 7 = Sunday.';
COMMENT ON COLUMN serving.dim_date.is_weekend IS 'True on Saturdays and Sundays.';
COMMENT ON COLUMN serving.dim_date.month_name IS 'English month name (January..December).';

-- BI views -------------------------------------------------------------------------------------------------
CREATE VIEW serving.v_customer_360 AS
SELECT
    f.tenant_id,
    f.as_of_date,
    f.customer_id,
    c.segment,
    c.country,
    c.signup_date,
    f.recency_days,
    f.orders_30d,
    f.monetary_30d,
    f.page_views_7d,
    f.cart_adds_7d,
    f.avg_rating,
    f.last_seen_at
FROM serving.customer_features f
LEFT JOIN serving.dim_customer c
    ON c.customer_id = f.customer_id AND c.tenant_id = f.tenant_id AND c.is_current;

COMMENT ON VIEW serving.v_customer_360 IS
    'Customer features per as-of day with the customer''s current segment and country (NULL if the customer is '
    'not in the reference data).';
COMMENT ON COLUMN serving.v_customer_360.tenant_id IS 'Tenant the customer belongs to.';
COMMENT ON COLUMN serving.v_customer_360.as_of_date IS 'Day d the features describe.';
COMMENT ON COLUMN serving.v_customer_360.customer_id IS 'Customer.';
COMMENT ON COLUMN serving.v_customer_360.segment IS 'Current segment (consumer, small_business, enterprise).';
COMMENT ON COLUMN serving.v_customer_360.country IS 'Current country, ISO 3166-1 alpha-2.';
COMMENT ON COLUMN serving.v_customer_360.signup_date IS 'Day the customer signed up.';
COMMENT ON COLUMN serving.v_customer_360.recency_days IS 'Days from the last placed order to d; NULL without an order in the 30 days.';
COMMENT ON COLUMN serving.v_customer_360.orders_30d IS 'Distinct orders placed in [d-29, d].';
COMMENT ON COLUMN serving.v_customer_360.monetary_30d IS 'Total price of the orders placed in [d-29, d].';
COMMENT ON COLUMN serving.v_customer_360.page_views_7d IS 'Page views in [d-6, d].';
COMMENT ON COLUMN serving.v_customer_360.cart_adds_7d IS 'Cart adds in [d-6, d].';
COMMENT ON COLUMN serving.v_customer_360.avg_rating IS 'Average review rating in [d-29, d]; NULL without reviews.';
COMMENT ON COLUMN serving.v_customer_360.last_seen_at IS 'Latest event up to the end of d.';

CREATE VIEW serving.v_product_reviews_daily AS
SELECT
    r.tenant_id,
    r.review_date,
    r.product_id,
    p.name     AS product_name,
    p.category AS product_category,
    p.brand,
    r.review_count,
    r.avg_rating,
    r.positive_share,
    r.negative_share,
    r.sentiment_score
FROM serving.product_reviews_daily r
LEFT JOIN serving.dim_product p ON p.product_id = r.product_id;

COMMENT ON VIEW serving.v_product_reviews_daily IS
    'Daily product reviews with the product''s current name, category and brand (NULL if not in the reference data).';
COMMENT ON COLUMN serving.v_product_reviews_daily.tenant_id IS 'Tenant the reviewing customers belong to.';
COMMENT ON COLUMN serving.v_product_reviews_daily.review_date IS 'Day (UTC) of the reviews.';
COMMENT ON COLUMN serving.v_product_reviews_daily.product_id IS 'Reviewed product.';
COMMENT ON COLUMN serving.v_product_reviews_daily.product_name IS 'Current product name.';
COMMENT ON COLUMN serving.v_product_reviews_daily.product_category IS 'Current product category.';
COMMENT ON COLUMN serving.v_product_reviews_daily.brand IS 'Current brand.';
COMMENT ON COLUMN serving.v_product_reviews_daily.review_count IS 'Number of reviews.';
COMMENT ON COLUMN serving.v_product_reviews_daily.avg_rating IS 'Average rating (1..5).';
COMMENT ON COLUMN serving.v_product_reviews_daily.positive_share IS 'Share of reviews rated 4 or 5.';
COMMENT ON COLUMN serving.v_product_reviews_daily.negative_share IS 'Share of reviews rated 1 or 2.';
COMMENT ON COLUMN serving.v_product_reviews_daily.sentiment_score IS 'Sentiment of the review texts; NULL until the model exists.';

-- Grants as in V003 (its default privileges cover objects created by the migrating role; explicit anyway, so
-- the grants hold whoever runs this migration).
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON
    serving.order_revenue_5min, serving.customer_behavior_daily, serving.product_reviews_daily,
    serving.customer_features, serving.device_metrics_minute, serving.dim_product, serving.dim_customer,
    serving.dim_date
    TO lakehouse_loader;
GRANT SELECT ON
    serving.order_revenue_5min, serving.customer_behavior_daily, serving.product_reviews_daily,
    serving.customer_features, serving.device_metrics_minute, serving.dim_product, serving.dim_customer,
    serving.dim_date, serving.v_customer_360, serving.v_product_reviews_daily
    TO bi_reader;
GRANT SELECT ON serving.v_customer_360, serving.v_product_reviews_daily TO lakehouse_loader;
