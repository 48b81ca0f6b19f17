-- Tenant portal links (API.md section 12). A link is its own browser session: opening it puts
-- its token in a cookie, valid until the link expires. Only the token's SHA-256 is kept, so a
-- copy of the database opens no portal. `theme` is the link's JSON theme, or NULL.
CREATE TABLE portal_links (
    token_hash BLOB PRIMARY KEY,
    org_id     TEXT NOT NULL,
    read_only  INTEGER NOT NULL,
    theme      TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX portal_links_by_expiry ON portal_links (expires_at);
