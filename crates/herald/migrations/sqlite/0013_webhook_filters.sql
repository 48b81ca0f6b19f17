-- A webhook's payload filter (API.md section 3), compact JSON as the API parsed it; NULL: no
-- filter. Read with the webhook's other publish columns, so a publish parses it once per change.
ALTER TABLE webhooks ADD COLUMN filter TEXT;
