-- Each webhook's pending deliveries in due order: when more is due than the head of the
-- queue showed, the claim goes webhook by webhook through it, so a full webhook's backlog is
-- skipped, not read.
CREATE INDEX deliveries_pending ON deliveries (webhook_id, next_attempt_at) WHERE status = 'pending';
