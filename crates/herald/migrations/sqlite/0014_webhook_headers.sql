-- A webhook's custom headers (API.md section 3): the JSON object sealed by the API with the
-- master key (secrets::SecretBox::seal_headers), as the signing secrets are; NULL: none.
-- Read with the webhook's publish and claim columns, so every attempt gets them.
ALTER TABLE webhooks ADD COLUMN headers BLOB;
