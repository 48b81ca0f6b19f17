-- Store v2's lean delivery schema (the same as SQLite's 0009; its comments say why).
--
-- On PostgreSQL the gain is HOT updates: a claim used to rewrite the wide delivery row and
-- add an entry to each of its six indexes (its `next_attempt_at` was indexed), and so did
-- the record. Now a claim rewrites a small queue row, and a record changes no indexed column
-- of the delivery, so with room left on its page (the fill factor) the new row version is a
-- heap-only tuple and no index is touched.

ALTER TABLE deliveries RENAME TO deliveries_old;
ALTER INDEX deliveries_pkey RENAME TO deliveries_old_pkey;

CREATE TABLE deliveries (
    seq                  BIGSERIAL PRIMARY KEY,
    id                   TEXT NOT NULL,
    event_id             TEXT NOT NULL,
    webhook_id           TEXT NOT NULL,
    org_id               TEXT NOT NULL,
    event_type           TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'canceled')),
    attempt_count        BIGINT NOT NULL DEFAULT 0,
    cycle_start          BIGINT NOT NULL DEFAULT 0,
    last_attempt_at      BIGINT,
    last_response_status BIGINT,
    last_error           TEXT,
    last_error_message   TEXT,
    delivered_at         BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
) WITH (fillfactor = 70);

-- `seq` in the order the deliveries were made (their ids sort by time).
CREATE TEMPORARY TABLE delivery_seqs ON COMMIT DROP AS
SELECT id, row_number() OVER (ORDER BY created_at, id) AS seq FROM deliveries_old;

INSERT INTO deliveries (seq, id, event_id, webhook_id, org_id, event_type, status, attempt_count,
    cycle_start, last_attempt_at, last_response_status, last_error, last_error_message, delivered_at,
    created_at, updated_at)
SELECT s.seq, d.id, d.event_id, d.webhook_id, d.org_id, d.event_type, d.status, d.attempt_count,
    d.cycle_start, d.last_attempt_at, d.last_response_status, d.last_error, d.last_error_message,
    d.delivered_at, d.created_at, d.updated_at
FROM deliveries_old d JOIN delivery_seqs s ON s.id = d.id ORDER BY s.seq;

SELECT setval(pg_get_serial_sequence('deliveries', 'seq'), COALESCE(MAX(seq), 0) + 1, false) FROM deliveries;

CREATE TABLE delivery_queue (
    delivery    BIGINT PRIMARY KEY, -- deliveries.seq
    webhook_id  TEXT NOT NULL,
    due_at      BIGINT,
    claim_token BIGINT
);

INSERT INTO delivery_queue (delivery, webhook_id, due_at, claim_token)
SELECT s.seq, d.webhook_id, d.next_attempt_at, d.claim_token
FROM deliveries_old d JOIN delivery_seqs s ON s.id = d.id WHERE d.status = 'pending';

DROP TABLE deliveries_old;

CREATE UNIQUE INDEX deliveries_by_id ON deliveries (id);
CREATE INDEX deliveries_by_org ON deliveries (org_id, id);
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

CREATE INDEX delivery_queue_due ON delivery_queue (due_at, webhook_id);
CREATE INDEX delivery_queue_by_webhook ON delivery_queue (webhook_id, due_at);

-- An attempt is never looked up by its own id.
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey;
