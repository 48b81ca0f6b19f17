-- Herald's schema on PostgreSQL: the same tables as the embedded store.
-- Times are epoch milliseconds (BIGINT); ids are prefixed, time-sortable text.

CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    role        TEXT NOT NULL CHECK (role IN ('admin', 'tenant', 'investor')),
    secret_hash BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE webhooks (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs(id),
    name              TEXT,
    description       TEXT,
    url               TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    disabled_reason   TEXT,
    event_types       TEXT,
    secret_last4      TEXT NOT NULL,
    last_triggered_at BIGINT,
    failing_since     BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    deleted_at        BIGINT
);

CREATE INDEX webhooks_live_by_org ON webhooks (org_id, id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_secrets (
    seq        BIGSERIAL PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id),
    ciphertext BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);

CREATE INDEX webhook_secrets_by_webhook ON webhook_secrets (webhook_id);

CREATE TABLE idempotency_keys (
    org_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    status      BIGINT,
    body        BYTEA,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

CREATE TABLE events (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs(id),
    event_type     TEXT NOT NULL,
    payload        TEXT NOT NULL,
    source_id      TEXT,
    delivery_count BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE UNIQUE INDEX events_by_source ON events (org_id, source_id) WHERE source_id IS NOT NULL;

CREATE TABLE deliveries (
    id                   TEXT PRIMARY KEY,
    event_id             TEXT NOT NULL REFERENCES events(id),
    webhook_id           TEXT NOT NULL REFERENCES webhooks(id),
    org_id               TEXT NOT NULL,
    event_type           TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'canceled')),
    attempt_count        BIGINT NOT NULL DEFAULT 0,
    cycle_start          BIGINT NOT NULL DEFAULT 0,
    next_attempt_at      BIGINT,
    claim_token          BIGINT,
    last_attempt_at      BIGINT,
    last_response_status BIGINT,
    last_error           TEXT,
    last_error_message   TEXT,
    delivered_at         BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (webhook_id) WHERE claim_token IS NOT NULL;
CREATE INDEX deliveries_by_org ON deliveries (org_id, id);
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, status, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

CREATE TABLE attempts (
    id                      TEXT PRIMARY KEY,
    delivery_id             TEXT NOT NULL REFERENCES deliveries(id),
    attempt_number          BIGINT NOT NULL,
    started_at              BIGINT NOT NULL,
    duration_ms             BIGINT NOT NULL,
    response_status         BIGINT,
    response_body           TEXT,
    response_body_truncated BOOLEAN NOT NULL,
    error                   TEXT,
    error_message           TEXT
);

CREATE INDEX attempts_by_delivery ON attempts (delivery_id, attempt_number);
