-- SQLite checks `x IN (a, b, c, d)` by building a temporary table of the list, on every row
-- written: the status check opened and dropped one for each delivery inserted and each
-- status recorded (with the record's guard and a RETURNING, nearly a quarter of the writer's
-- instructions under callgrind). A chain of equalities is the same check without it. A check
-- cannot be altered in place, so the table is rebuilt (the migration runner turns foreign
-- keys off around it and checks them before the commit).
CREATE TABLE deliveries_rebuilt (
    id                   TEXT PRIMARY KEY,
    event_id             TEXT NOT NULL REFERENCES events(id),
    webhook_id           TEXT NOT NULL REFERENCES webhooks(id),
    org_id               TEXT NOT NULL,
    event_type           TEXT NOT NULL,
    status               TEXT NOT NULL
        CHECK (status = 'pending' OR status = 'delivered' OR status = 'failed' OR status = 'canceled'),
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

-- The rowids are kept: claims break ties in `next_attempt_at` by them.
INSERT INTO deliveries_rebuilt (rowid, id, event_id, webhook_id, org_id, event_type, status, attempt_count,
    cycle_start, next_attempt_at, claim_token, last_attempt_at, last_response_status, last_error,
    last_error_message, delivered_at, created_at, updated_at)
SELECT rowid, id, event_id, webhook_id, org_id, event_type, status, attempt_count,
    cycle_start, next_attempt_at, claim_token, last_attempt_at, last_response_status, last_error,
    last_error_message, delivered_at, created_at, updated_at
FROM deliveries;

DROP TABLE deliveries;
ALTER TABLE deliveries_rebuilt RENAME TO deliveries;

CREATE INDEX deliveries_by_org ON deliveries (org_id, id);
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, status, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
-- The claim reads the head of the due queue from this index alone (webhook included).
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, webhook_id) WHERE status = 'pending';
CREATE INDEX deliveries_pending ON deliveries (webhook_id, next_attempt_at) WHERE status = 'pending';
