-- Keys get a name, a last use and a revocation; orgs get their own retention and an
-- erasure mark (the org and everything in it answer 404 from then on; the purger deletes
-- the rows of an erased org in the background). Times are epoch milliseconds.
ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
ALTER TABLE api_keys ADD COLUMN revoked_at BIGINT;
ALTER TABLE orgs ADD COLUMN retention_ms BIGINT;
ALTER TABLE orgs ADD COLUMN erased_at BIGINT;

-- Every scoped lookup asks whether its org is erased: a tiny index of the erased ones.
CREATE INDEX orgs_erased ON orgs (id) WHERE erased_at IS NOT NULL;
-- Key lists, per org or all, newest first, without the revoked keys.
CREATE INDEX api_keys_live_by_org ON api_keys (org_id, id) WHERE revoked_at IS NULL;
