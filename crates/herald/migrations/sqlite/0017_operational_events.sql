-- Operational events (API.md section 11). The state change an event announces writes a row
-- here in its own transaction, so the announcement exists exactly when the change does; each
-- node's announcer publishes the rows and deletes them. The row's id is the published events'
-- caller id, deduplicated per org: a row published twice (by two nodes, or again after a crash
-- before its delete) still makes one event per org.
CREATE TABLE announcements (
    id                   TEXT PRIMARY KEY,
    event_type           TEXT NOT NULL,
    org_id               TEXT NOT NULL,
    webhook_id           TEXT NOT NULL,
    url                  TEXT NOT NULL,
    at                   INTEGER NOT NULL,
    reason               TEXT,
    delivery_id          TEXT,
    event_id             TEXT,
    delivery_event_type  TEXT,
    attempts             INTEGER,
    last_error           TEXT,
    last_response_status INTEGER
);

-- The operator's org, made at first start: operational events are published into it too. A
-- database made before this release had it as its oldest org.
CREATE TABLE operator_org (org_id TEXT NOT NULL);
INSERT INTO operator_org (org_id)
    SELECT id FROM orgs WHERE erased_at IS NULL ORDER BY created_at, id LIMIT 1;
