-- The dashboard: sign-in sessions, and the signature header each attempt sent.

-- Only the SHA-256 of the browser's token is kept, so a copy of the database signs no one in.
CREATE TABLE dashboard_sessions (
    token_hash BLOB PRIMARY KEY,
    key_id     TEXT NOT NULL REFERENCES api_keys(id),
    org_id     TEXT NOT NULL REFERENCES orgs(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX dashboard_sessions_by_expiry ON dashboard_sessions (expires_at);

ALTER TABLE attempts ADD COLUMN signature TEXT;
