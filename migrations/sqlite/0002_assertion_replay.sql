-- Used client-assertion ids (private_key_jwt), kept until the assertion's exp + skew.
CREATE TABLE assertion_replay (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL, -- Unix seconds
    PRIMARY KEY (client_id, jti)
) WITHOUT ROWID;
CREATE INDEX assertion_replay_by_expiry ON assertion_replay (expires_at);
