-- The serving tables of the interval marts become partitioned by day: one partition per day of the date column,
-- named <table>_p<yyyymmdd>. A load then replaces a day by swapping in a partition it has filled and indexed
-- beforehand (lakehouse.postgres.loader), instead of deleting and inserting rows under the table's indexes.
--
-- * The (date, tenant) indexes go: inside one day's partition the primary key (tenant_id, <date>, ...) serves
--   "one tenant, one day", and a scan of the day's partitions serves "all tenants, these days".
-- * lakehouse_loader owns these tables from here on: attaching and detaching partitions is the owner's right.
-- * The text columns of the mart tables (ids, codes, categories) get the "C" collation: index builds and key
--   comparisons then compare bytes, about a third faster. Their order does not change on a database whose
--   collation is C.UTF-8 (code point order, as the local stack's); elsewhere ORDER BY on them is by code point.
--   Joins with columns of the database's default collation work as before.
-- * Rows move into the new tables; the views over them are recreated as they were (definition, comments, grants).

CREATE FUNCTION lakehouse_meta.add_day_partitions(parent regclass, first_day date, end_day date)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    schema_name text;
    table_name  text;
    parent_owner text;
    day         date;
    created     integer := 0;
BEGIN
    SELECT n.nspname, c.relname, c.relowner::regrole::text INTO schema_name, table_name, parent_owner
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = parent;
    day := first_day;
    WHILE day < end_day LOOP
        IF to_regclass(format('%I.%I', schema_name, table_name || '_p' || to_char(day, 'YYYYMMDD'))) IS NULL THEN
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           schema_name, table_name || '_p' || to_char(day, 'YYYYMMDD'), parent, day, day + 1);
            EXECUTE format('ALTER TABLE %I.%I OWNER TO %s', schema_name,
                           table_name || '_p' || to_char(day, 'YYYYMMDD'), parent_owner);
            created := created + 1;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN created;
END
$$;
COMMENT ON FUNCTION lakehouse_meta.add_day_partitions(regclass, date, date) IS
    'Creates the missing day partitions <table>_p<yyyymmdd> of a serving table for [first_day, end_day); '
    'owned by the table''s owner; returns how many it created. Loads do not need it (they bring their own partitions): it is for bulk inserts.';

CREATE TEMP TABLE saved_views ON COMMIT DROP AS
SELECT c.oid, c.relname, pg_catalog.pg_get_viewdef(c.oid) AS definition,
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment, c.relacl
FROM pg_catalog.pg_class c
WHERE c.relnamespace = 'serving'::regnamespace AND c.relkind = 'v';

CREATE TEMP TABLE saved_view_columns ON COMMIT DROP AS
SELECT c.relname, a.attname, pg_catalog.col_description(c.oid, a.attnum) AS comment
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
WHERE c.relnamespace = 'serving'::regnamespace AND c.relkind = 'v'
  AND pg_catalog.col_description(c.oid, a.attnum) IS NOT NULL;

-- the migrating role hands the tables to lakehouse_loader, so it must be a member (a no-op for a superuser)
DO $$
BEGIN
    IF NOT pg_catalog.pg_has_role(current_user, 'lakehouse_loader', 'MEMBER') THEN
        EXECUTE format('GRANT lakehouse_loader TO %I', current_user);
    END IF;
END
$$;

DO $$
DECLARE
    view_row  record;
    mart      record;
    text_column record;
    day       date;
BEGIN
    FOR view_row IN SELECT relname FROM saved_views LOOP
        EXECUTE format('DROP VIEW IF EXISTS serving.%I CASCADE', view_row.relname);
    END LOOP;

    FOR mart IN
        SELECT * FROM (VALUES
            ('fct_orders_daily', 'order_date'),
            ('order_revenue_5min', 'window_date'),
            ('customer_behavior_daily', 'activity_date'),
            ('product_reviews_daily', 'review_date'),
            ('customer_features', 'as_of_date'),
            ('device_metrics_minute', 'metric_date')
        ) AS m (table_name, date_column)
    LOOP
        EXECUTE format('ALTER TABLE serving.%I RENAME TO %I', mart.table_name, mart.table_name || '_v005');
        EXECUTE format(
            'CREATE TABLE serving.%I (LIKE serving.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS) '
            'PARTITION BY RANGE (%I)', mart.table_name, mart.table_name || '_v005', mart.date_column);
        EXECUTE format('ALTER TABLE serving.%I OWNER TO lakehouse_loader', mart.table_name);
        FOR text_column IN
            SELECT column_name FROM information_schema.columns
            WHERE table_schema = 'serving' AND table_name = mart.table_name AND data_type = 'text'
        LOOP
            EXECUTE format('ALTER TABLE serving.%I ALTER COLUMN %I TYPE text COLLATE "C"',
                           mart.table_name, text_column.column_name);
        END LOOP;
        EXECUTE format('COMMENT ON TABLE serving.%I IS %L', mart.table_name,
            pg_catalog.obj_description(format('serving.%I', mart.table_name || '_v005')::regclass, 'pg_class')
            || ' Partitioned by day (' || mart.date_column || '): one partition per loaded day, '
            || mart.table_name || '_p<yyyymmdd>.');
        FOR day IN EXECUTE format('SELECT DISTINCT %I FROM serving.%I', mart.date_column, mart.table_name || '_v005')
        LOOP
            PERFORM lakehouse_meta.add_day_partitions(format('serving.%I', mart.table_name)::regclass, day, day + 1);
        END LOOP;
        EXECUTE format('INSERT INTO serving.%I SELECT * FROM serving.%I', mart.table_name, mart.table_name || '_v005');
        EXECUTE format('DROP TABLE serving.%I', mart.table_name || '_v005');
    END LOOP;

    FOR text_column IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = 'serving' AND table_name IN ('dim_product', 'dim_customer', 'dim_date')
          AND data_type = 'text'
    LOOP
        EXECUTE format('ALTER TABLE serving.%I ALTER COLUMN %I TYPE text COLLATE "C"',
                       text_column.table_name, text_column.column_name);
    END LOOP;
END
$$;

ALTER TABLE serving.fct_orders_daily
    ADD CONSTRAINT fct_orders_daily_pkey PRIMARY KEY (tenant_id, order_date, region, channel, product_category);
ALTER TABLE serving.order_revenue_5min
    ADD CONSTRAINT order_revenue_5min_pkey PRIMARY KEY (tenant_id, window_date, window_start, region, product_category);
ALTER TABLE serving.customer_behavior_daily
    ADD CONSTRAINT customer_behavior_daily_pkey PRIMARY KEY (tenant_id, activity_date, customer_id);
-- one customer's history (customer 360)
CREATE INDEX customer_behavior_daily_customer_idx ON serving.customer_behavior_daily (customer_id, activity_date);
ALTER TABLE serving.product_reviews_daily
    ADD CONSTRAINT product_reviews_daily_pkey PRIMARY KEY (tenant_id, review_date, product_id);
CREATE INDEX product_reviews_daily_product_idx ON serving.product_reviews_daily (product_id, review_date);
ALTER TABLE serving.customer_features
    ADD CONSTRAINT customer_features_pkey PRIMARY KEY (tenant_id, as_of_date, customer_id);
CREATE INDEX customer_features_customer_idx ON serving.customer_features (customer_id, as_of_date);
ALTER TABLE serving.device_metrics_minute
    ADD CONSTRAINT device_metrics_minute_pkey PRIMARY KEY (tenant_id, metric_date, minute_start, device_id, metric);
-- one device's time series
CREATE INDEX device_metrics_minute_device_idx ON serving.device_metrics_minute (device_id, metric, minute_start);

GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON
    serving.fct_orders_daily, serving.order_revenue_5min, serving.customer_behavior_daily,
    serving.product_reviews_daily, serving.customer_features, serving.device_metrics_minute
    TO lakehouse_loader;
GRANT SELECT ON
    serving.fct_orders_daily, serving.order_revenue_5min, serving.customer_behavior_daily,
    serving.product_reviews_daily, serving.customer_features, serving.device_metrics_minute
    TO bi_reader;

DO $$
DECLARE
    view_row record;
    grant_row record;
BEGIN
    FOR view_row IN SELECT * FROM saved_views ORDER BY oid LOOP
        EXECUTE format('CREATE VIEW serving.%I AS %s', view_row.relname, view_row.definition);
        EXECUTE format('COMMENT ON VIEW serving.%I IS %L', view_row.relname, view_row.comment);
        -- exactly the grants the view had (not those the default privileges would give a new view)
        EXECUTE format('REVOKE ALL ON serving.%I FROM PUBLIC, lakehouse_loader, bi_reader', view_row.relname);
        FOR grant_row IN SELECT grantee, privilege_type FROM aclexplode(view_row.relacl) LOOP
            EXECUTE format('GRANT %s ON serving.%I TO %s', grant_row.privilege_type, view_row.relname,
                           CASE WHEN grant_row.grantee = 0 THEN 'PUBLIC'
                                ELSE grant_row.grantee::regrole::text END);
        END LOOP;
    END LOOP;
    FOR view_row IN SELECT * FROM saved_view_columns LOOP
        EXECUTE format('COMMENT ON COLUMN serving.%I.%I IS %L', view_row.relname, view_row.attname, view_row.comment);
    END LOOP;
END
$$;
