-- A tenant's records are listed in id order by their tenant (with API keys): one index on
-- the two, for records that have a tenant.
CREATE INDEX records_tenant ON records ((record->>'tenant'), media_id) WHERE record ? 'tenant';
