-- Idempotency keys belong to the API key that sent them, not to its org: a stored answer
-- (a new key's secret, a webhook's signing secret, another role's 403) must never be
-- replayed to a different caller. Stored bodies are sealed with the master key from now on;
-- the rows kept so far held them in plain text, so they are dropped rather than carried over
-- (a retry of such a request within its 24 hours runs again).
DROP TABLE idempotency_keys;

CREATE TABLE idempotency_keys (
    key_id      TEXT NOT NULL,    -- the API key that sent the request
    key         TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    status      INTEGER,          -- NULL while the first request is still running
    body        BLOB,             -- sealed (XChaCha20-Poly1305) with the master key
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (key_id, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
