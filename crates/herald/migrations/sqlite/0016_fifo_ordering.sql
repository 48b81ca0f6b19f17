-- A webhook's delivery order (API.md section 3): 'none', or 'fifo' for one attempt at a time
-- in acceptance order.
ALTER TABLE webhooks ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none'
    CHECK (ordering = 'none' OR ordering = 'fifo');
-- Claims read the webhooks with controls (a rate limit or FIFO order) on every run.
DROP INDEX webhooks_rate_limited;
CREATE INDEX webhooks_controlled ON webhooks (id) WHERE rate_limit IS NOT NULL OR ordering = 'fifo';

-- A FIFO webhook's queue rows carry their place in its line; NULL for every other webhook's,
-- so only FIFO rows are in this index and other deliveries pay nothing for it. A claim takes
-- a FIFO webhook's first row only, and only once it is due: one attempt at a time, in order.
ALTER TABLE delivery_queue ADD COLUMN position INTEGER;
CREATE INDEX delivery_queue_fifo ON delivery_queue (webhook_id, position) WHERE position IS NOT NULL;
