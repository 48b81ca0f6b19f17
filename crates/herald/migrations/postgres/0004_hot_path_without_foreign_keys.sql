-- The foreign keys on the rows written for every event are checked by a query per row that
-- also share-locks the parent row: every publish of an org locked the same org row, every
-- delivery its webhook row, every attempt its delivery. With concurrent writers that is a
-- multixact per hot parent row, and the checks were a third to a half of the insert time
-- (herald-bench throughput with pg_stat_statements). Herald writes each child in the same
-- transaction as its parent or after it, and never deletes events, deliveries, attempts or
-- webhooks (a deleted webhook is marked, not removed), so the keys guarded nothing Herald
-- does. The keys on the rarely written tables (webhooks, secrets, API keys, sessions) stay.
ALTER TABLE events DROP CONSTRAINT events_org_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_webhook_id_fkey;
ALTER TABLE attempts DROP CONSTRAINT attempts_delivery_id_fkey;
