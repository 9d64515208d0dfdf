-- An API's signing_secret (HS256), sealed with the master key like a client's secret; kept
-- out of the stored document so that the document never holds a secret.
ALTER TABLE resource_servers ADD COLUMN sealed_signing_secret BYTEA;
