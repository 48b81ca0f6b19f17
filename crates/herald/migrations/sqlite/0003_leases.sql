-- Deliveries leased right now, per webhook: the per-webhook concurrency cap counts them, so
-- the cap holds across every process sharing the database.
CREATE INDEX deliveries_leased ON deliveries (webhook_id) WHERE claim_token IS NOT NULL;
