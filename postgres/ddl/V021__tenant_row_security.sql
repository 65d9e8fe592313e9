-- Tenant isolation for BI: a bi_reader login sees only the rows of the tenants it is mapped to.
--
-- * lakehouse_meta.bi_tenant_grants maps a role (a login, or a group granted to logins) to a tenant id.
-- * bi_all_tenants is the platform admins' role, a member of bi_reader: its members see every tenant (Superset's
--   reader is one).
-- * Every serving table with a tenant_id column gets row-level security: a member of bi_reader sees a row when it
--   is in bi_all_tenants or mapped to the row's tenant; a bi_reader login with no mapping sees no row.
--   lakehouse_loader keeps every row; owners and superusers are not subject to the policies.
-- * The views over those tables check the policies as the querying role (security_invoker): a view owned by the
--   migrating role would otherwise read the tables as its owner. A migration that recreates one of them must set
--   it again (tests/integration/test_postgres_tenants.py fails if it does not).
-- * The day partitions are reachable only through their table: reading one directly would skip the policies.
-- * Tables without a tenant_id (platform health, models, dim_date, the shared product catalogue) hold no tenant's
--   rows and stay readable by every bi_reader.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'bi_all_tenants') THEN
        BEGIN
            CREATE ROLE bi_all_tenants NOLOGIN;
            COMMENT ON ROLE bi_all_tenants IS 'BI logins that see every tenant''s rows of the serving tables.';
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;
GRANT bi_reader TO bi_all_tenants;

CREATE TABLE lakehouse_meta.bi_tenant_grants (
    role_name  name NOT NULL,
    tenant_id  text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role_name, tenant_id)
);
COMMENT ON TABLE lakehouse_meta.bi_tenant_grants IS
    'Which tenants a BI role sees in the serving tables: a login sees the tenants of every role it is a member of.';

-- SECURITY DEFINER: bi_reader cannot read lakehouse_meta. session_user is the login the BI tool connected as.
CREATE FUNCTION serving.bi_visible_tenants()
RETURNS text[]
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(DISTINCT g.tenant_id), '{}')
    FROM lakehouse_meta.bi_tenant_grants g
    JOIN pg_catalog.pg_roles r ON r.rolname = g.role_name
    WHERE pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')
$$;
COMMENT ON FUNCTION serving.bi_visible_tenants() IS
    'The tenant ids the connected login sees (lakehouse_meta.bi_tenant_grants); empty when it is mapped to none.';

CREATE FUNCTION serving.bi_sees_all_tenants()
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.pg_has_role(session_user, 'bi_all_tenants', 'MEMBER')
$$;
COMMENT ON FUNCTION serving.bi_sees_all_tenants() IS 'True when the connected login is a member of bi_all_tenants.';

REVOKE ALL ON FUNCTION serving.bi_visible_tenants(), serving.bi_sees_all_tenants() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION serving.bi_visible_tenants(), serving.bi_sees_all_tenants() TO bi_reader, lakehouse_loader;

DO $$
DECLARE
    relation record;
BEGIN
    FOR relation IN
        SELECT c.relname, c.relkind
        FROM pg_catalog.pg_class c
        WHERE c.relnamespace = 'serving'::regnamespace
          AND c.relkind IN ('r', 'p', 'v')
          AND NOT c.relispartition
          AND EXISTS (SELECT FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
        ORDER BY c.relname
    LOOP
        IF relation.relkind = 'v' THEN
            EXECUTE format('ALTER VIEW serving.%I SET (security_invoker = true)', relation.relname);
        ELSE
            EXECUTE format('ALTER TABLE serving.%I ENABLE ROW LEVEL SECURITY', relation.relname);
            -- the scalar subqueries run once per query, not once per row
            EXECUTE format(
                'CREATE POLICY bi_tenant_rows ON serving.%I FOR SELECT TO bi_reader USING ('
                '(SELECT serving.bi_sees_all_tenants()) '
                'OR tenant_id = ANY ((SELECT serving.bi_visible_tenants())::text[]))',
                relation.relname);
            EXECUTE format(
                'CREATE POLICY loader_all_rows ON serving.%I TO lakehouse_loader USING (true) WITH CHECK (true)',
                relation.relname);
        END IF;
    END LOOP;
END
$$;

DO $$
DECLARE
    partition_row record;
BEGIN
    FOR partition_row IN
        SELECT c.relname FROM pg_catalog.pg_class c
        WHERE c.relnamespace = 'serving'::regnamespace AND c.relispartition AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('REVOKE ALL ON serving.%I FROM PUBLIC, bi_reader', partition_row.relname);
    END LOOP;
END
$$;

-- partitions it creates are reachable only through their table, too
CREATE OR REPLACE FUNCTION lakehouse_meta.add_day_partitions(parent regclass, first_day date, end_day date)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    schema_name text;
    table_name  text;
    parent_owner text;
    partition_name text;
    day         date;
    created     integer := 0;
BEGIN
    SELECT n.nspname, c.relname, c.relowner::regrole::text INTO schema_name, table_name, parent_owner
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = parent;
    day := first_day;
    WHILE day < end_day LOOP
        partition_name := table_name || '_p' || to_char(day, 'YYYYMMDD');
        IF to_regclass(format('%I.%I', schema_name, partition_name)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           schema_name, partition_name, parent, day, day + 1);
            EXECUTE format('ALTER TABLE %I.%I OWNER TO %s', schema_name, partition_name, parent_owner);
            EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC, bi_reader', schema_name, partition_name);
            created := created + 1;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN created;
END
$$;
