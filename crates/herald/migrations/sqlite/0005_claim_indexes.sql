-- The claim reads the head of the due queue from this index alone (webhook included).
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, webhook_id) WHERE status = 'pending';

-- Each webhook's pending deliveries in due order: the claim goes webhook by webhook through
-- it when more is due than the head showed, so a full webhook's backlog is skipped, not read.
CREATE INDEX deliveries_pending ON deliveries (webhook_id, next_attempt_at) WHERE status = 'pending';

-- The claim counts each webhook's unexpired leases from this index alone.
DROP INDEX deliveries_leased;
CREATE INDEX deliveries_leased ON deliveries (webhook_id, next_attempt_at) WHERE claim_token IS NOT NULL;
