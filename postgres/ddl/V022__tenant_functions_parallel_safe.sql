-- The tenant policies' functions run in every query a bi_reader member makes. Declared PARALLEL UNSAFE (the
-- default), they kept every such query from using parallel workers: a scan of serving.order_revenue_5min took twice
-- the time as a member of bi_all_tenants that it took as the table owner. They only read the catalogue and
-- lakehouse_meta.bi_tenant_grants, so they are parallel safe; session_user is the leader's in parallel workers.
ALTER FUNCTION serving.bi_visible_tenants() PARALLEL SAFE;
ALTER FUNCTION serving.bi_sees_all_tenants() PARALLEL SAFE;
