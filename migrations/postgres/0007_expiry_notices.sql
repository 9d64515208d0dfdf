-- The credential-expiry notices sent (audit events `clavis_credential_expiring` and
-- `clavis_credential_expired`): one row per credential and threshold in seconds (0 = expired),
-- with the expiry it was sent for. Whoever inserts the row, or moves it to a later expiry
-- (the credential was renewed), records the event; so a notice is sent once, by one node.
-- The notices of a credential go with it.
CREATE TABLE credential_expiry_notices (
    credential_id TEXT NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    threshold_s   BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    sent_at_ms    BIGINT NOT NULL,
    PRIMARY KEY (credential_id, threshold_s)
);
