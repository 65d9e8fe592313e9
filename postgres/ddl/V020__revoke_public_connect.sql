-- Only roles granted CONNECT reach the serving database (its owner, lakehouse_loader and bi_reader with their
-- members): PUBLIC's default CONNECT and TEMPORARY are taken away, as on every database of the embedded server.
-- The loads make temporary tables, so lakehouse_loader keeps TEMPORARY.
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO lakehouse_loader', current_database());
END
$$;
