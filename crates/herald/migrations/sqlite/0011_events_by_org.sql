-- Retention and erasure walk an org's events oldest first, in small batches: without this
-- index each batch would scan every org's events to find one org's.
CREATE INDEX events_by_org ON events (org_id, id);
