-- Keys that can be named, seen in use and revoked; orgs with their own retention, and erased.
ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
ALTER TABLE api_keys ADD COLUMN revoked_at BIGINT;
ALTER TABLE orgs ADD COLUMN retention_ms BIGINT;
ALTER TABLE orgs ADD COLUMN erased_at BIGINT;
