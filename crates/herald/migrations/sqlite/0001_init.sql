-- Orgs, API keys, webhooks with their signing secrets, and idempotency records.
-- Times are epoch milliseconds; ids are prefixed, time-sortable text.

CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    role        TEXT NOT NULL CHECK (role IN ('admin', 'tenant', 'investor')),
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE webhooks (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs(id),
    name              TEXT,
    description       TEXT,
    url               TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    disabled_reason   TEXT,
    event_types       TEXT, -- JSON array of patterns; NULL = every type
    secret_last4      TEXT NOT NULL,
    last_triggered_at INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    deleted_at        INTEGER
) STRICT;

CREATE INDEX webhooks_live_by_org ON webhooks (org_id, id) WHERE deleted_at IS NULL;

-- The current secret has expires_at NULL; previous ones sign until they expire.
CREATE TABLE webhook_secrets (
    seq        INTEGER PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id),
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
) STRICT;

CREATE INDEX webhook_secrets_by_webhook ON webhook_secrets (webhook_id);

CREATE TABLE idempotency_keys (
    org_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    status      INTEGER,          -- NULL while the first request is still running
    body        BLOB,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (org_id, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
