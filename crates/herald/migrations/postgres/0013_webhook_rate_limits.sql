-- A webhook's rate limit (API.md section 3): deliveries per second, NULL for none. Read with
-- the webhook's publish columns and by claims, which lease a limited webhook no more than a
-- second of its sends ahead.
ALTER TABLE webhooks ADD COLUMN rate_limit BIGINT;
CREATE INDEX webhooks_rate_limited ON webhooks (id) WHERE rate_limit IS NOT NULL;

-- When a rate-limited webhook's next send may start, in microseconds since the epoch: every
-- node reserves its sends here, a few at a time (one row update each), so one limit holds
-- across nodes.
CREATE TABLE webhook_pacing (
    webhook_id   TEXT PRIMARY KEY,
    next_turn_us BIGINT NOT NULL
);
