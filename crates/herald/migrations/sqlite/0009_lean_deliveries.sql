-- Store v2's lean delivery schema.
--
-- * The due queue is a table of its own, one small row per pending delivery keyed by the
--   delivery's integer `seq`: a claim's lease and a retry's new due time rewrite that row and
--   its two indexes, not the wide delivery row. A delivery row is written when it is stored
--   and when an attempt is recorded, and no index of it holds a column that changes then, so
--   a record rewrites the row alone.
-- * Deliveries and attempts get an integer primary key (`seq`) that grows with time. The
--   public prefixed ids keep the indexes their routes look them up by; an attempt is never
--   looked up by its own id, so that index goes.
-- * No foreign keys on the hot tables (as on PostgreSQL since its 0004): the store writes
--   them together in one transaction, and retention deletes old rows in `seq` order without
--   a lookup per parent row.
--
-- A row of `delivery_queue` exists exactly while its delivery is `pending`. `due_at` is when
-- it is due; while an attempt runs, its lease's end (so a crashed worker's delivery becomes
-- due again by itself); NULL while its webhook is disabled (parked).

CREATE TABLE deliveries_lean (
    seq                  INTEGER PRIMARY KEY,
    id                   TEXT NOT NULL,
    event_id             TEXT NOT NULL,
    webhook_id           TEXT NOT NULL,
    org_id               TEXT NOT NULL,
    event_type           TEXT NOT NULL,
    status               TEXT NOT NULL
        CHECK (status = 'pending' OR status = 'delivered' OR status = 'failed' OR status = 'canceled'),
    attempt_count        INTEGER NOT NULL DEFAULT 0,
    -- Attempts made before the last manual retry or replay: the schedule restarts there.
    cycle_start          INTEGER NOT NULL DEFAULT 0,
    last_attempt_at      INTEGER,
    last_response_status INTEGER,
    last_error           TEXT,
    last_error_message   TEXT,
    delivered_at         INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
) STRICT;

-- The old rowids become `seq`: they were given in insert order, and claims broke ties in due
-- time by them.
INSERT INTO deliveries_lean (seq, id, event_id, webhook_id, org_id, event_type, status, attempt_count,
    cycle_start, last_attempt_at, last_response_status, last_error, last_error_message, delivered_at,
    created_at, updated_at)
SELECT rowid, id, event_id, webhook_id, org_id, event_type, status, attempt_count,
    cycle_start, last_attempt_at, last_response_status, last_error, last_error_message, delivered_at,
    created_at, updated_at
FROM deliveries ORDER BY rowid;

CREATE TABLE delivery_queue (
    delivery    INTEGER PRIMARY KEY, -- deliveries.seq
    webhook_id  TEXT NOT NULL,
    due_at      INTEGER,
    claim_token INTEGER
) STRICT;

INSERT INTO delivery_queue (delivery, webhook_id, due_at, claim_token)
SELECT rowid, webhook_id, next_attempt_at, claim_token FROM deliveries WHERE status = 'pending';

CREATE TABLE attempts_lean (
    seq                     INTEGER PRIMARY KEY,
    id                      TEXT NOT NULL,
    delivery_id             TEXT NOT NULL,
    attempt_number          INTEGER NOT NULL,
    started_at              INTEGER NOT NULL,
    duration_ms             INTEGER NOT NULL,
    response_status         INTEGER,
    response_body           TEXT,
    response_body_truncated INTEGER NOT NULL,
    error                   TEXT,
    error_message           TEXT,
    signature               TEXT
) STRICT;

INSERT INTO attempts_lean (id, delivery_id, attempt_number, started_at, duration_ms, response_status,
    response_body, response_body_truncated, error, error_message, signature)
SELECT id, delivery_id, attempt_number, started_at, duration_ms, response_status,
    response_body, response_body_truncated, error, error_message, signature
FROM attempts ORDER BY rowid;

DROP TABLE attempts;
DROP TABLE deliveries;
ALTER TABLE deliveries_lean RENAME TO deliveries;
ALTER TABLE attempts_lean RENAME TO attempts;

-- The routes' lookups: by id (any org, for an admin key), an org's deliveries newest first,
-- a webhook's, an event's. None holds the status, so recording an attempt moves none.
CREATE UNIQUE INDEX deliveries_by_id ON deliveries (id);
CREATE INDEX deliveries_by_org ON deliveries (org_id, id);
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

CREATE INDEX attempts_by_delivery ON attempts (delivery_id, attempt_number);

-- A claim reads the head of the queue in due order from the first, and each webhook's due
-- deliveries from the second when more is due than the head showed.
CREATE INDEX delivery_queue_due ON delivery_queue (due_at, webhook_id);
CREATE INDEX delivery_queue_by_webhook ON delivery_queue (webhook_id, due_at);
