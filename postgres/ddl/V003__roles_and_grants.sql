-- Roles: lakehouse_loader writes the serving tables, bi_reader only reads them. Both are NOLOGIN groups:
-- grant them to login roles (GRANT bi_reader TO alice). Roles are cluster-wide, so another database's
-- migration may create them at the same moment; that race is tolerated.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['lakehouse_loader', 'bi_reader'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
                EXECUTE format('COMMENT ON ROLE %I IS %L', role_name, CASE role_name
                    WHEN 'bi_reader' THEN 'Read-only access to the serving schema for BI tools.'
                    ELSE 'Loads the serving schema: creates staging tables, replaces date intervals.' END);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO lakehouse_loader, bi_reader', current_database());
END
$$;

-- Nothing outside serving is granted: the migrations bookkeeping and public stay private.
REVOKE ALL ON SCHEMA serving FROM PUBLIC;
REVOKE ALL ON SCHEMA lakehouse_meta FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

GRANT USAGE, CREATE ON SCHEMA serving TO lakehouse_loader;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA serving TO lakehouse_loader;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA serving TO lakehouse_loader;

GRANT USAGE ON SCHEMA serving TO bi_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA serving TO bi_reader;

-- Tables and views that later migrations create (as the role running migrations) get the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA serving
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO lakehouse_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA serving GRANT USAGE, SELECT ON SEQUENCES TO lakehouse_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA serving GRANT SELECT ON TABLES TO bi_reader;
