-- Events, their deliveries (one per event and webhook), and every attempt.

-- Since when every delivery to a webhook has failed (NULL after a success): auto-disable.
ALTER TABLE webhooks ADD COLUMN failing_since INTEGER;

CREATE TABLE events (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs(id),
    event_type     TEXT NOT NULL,
    payload        TEXT NOT NULL,  -- the exact JSON body sent on the wire
    source_id      TEXT,           -- the caller's own id, deduplicated per org for 24 h
    delivery_count INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX events_by_source ON events (org_id, source_id) WHERE source_id IS NOT NULL;

CREATE TABLE deliveries (
    id                   TEXT PRIMARY KEY,
    event_id             TEXT NOT NULL REFERENCES events(id),
    webhook_id           TEXT NOT NULL REFERENCES webhooks(id),
    org_id               TEXT NOT NULL,
    event_type           TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'canceled')),
    attempt_count        INTEGER NOT NULL DEFAULT 0,
    -- Attempts made before the last manual retry or replay: the schedule restarts there.
    cycle_start          INTEGER NOT NULL DEFAULT 0,
    -- Pending: when the next attempt is due. While an attempt runs it holds the lease's end,
    -- so a crashed worker's delivery becomes due again by itself. NULL = parked (webhook disabled).
    next_attempt_at      INTEGER,
    claim_token          INTEGER,
    last_attempt_at      INTEGER,
    last_response_status INTEGER,
    last_error           TEXT,
    last_error_message   TEXT,
    delivered_at         INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
) STRICT;

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_org ON deliveries (org_id, id);
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, status, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

CREATE TABLE attempts (
    id                     TEXT PRIMARY KEY,
    delivery_id            TEXT NOT NULL REFERENCES deliveries(id),
    attempt_number         INTEGER NOT NULL,
    started_at             INTEGER NOT NULL,
    duration_ms            INTEGER NOT NULL,
    response_status        INTEGER,
    response_body          TEXT,
    response_body_truncated INTEGER NOT NULL,
    error                  TEXT,
    error_message          TEXT
) STRICT;

CREATE INDEX attempts_by_delivery ON attempts (delivery_id, attempt_number);
