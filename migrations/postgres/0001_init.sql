-- Clavis schema, PostgreSQL. The same shapes as the SQLite schema: documents are JSON text
-- (kept byte-for-byte, so key order survives), columns exist only where queried, and `seq`
-- gives creation order for paging.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE clients (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id     TEXT NOT NULL UNIQUE,
    doc           TEXT NOT NULL,
    sealed_secret BYTEA
);

-- A client's credentials are written only while its client row is locked (SELECT ... FOR
-- UPDATE), which makes the per-client rules (caps, attachment) serial across nodes.
CREATE TABLE credentials (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id        TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    doc       TEXT NOT NULL
);
CREATE INDEX credentials_by_client ON credentials (client_id, seq);

CREATE TABLE resource_servers (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    identifier TEXT NOT NULL UNIQUE,
    doc        TEXT NOT NULL
);

CREATE TABLE client_grants (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id        TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL
        CONSTRAINT client_grants_client_fkey REFERENCES clients (client_id) ON DELETE CASCADE,
    audience  TEXT NOT NULL
        CONSTRAINT client_grants_audience_fkey REFERENCES resource_servers (identifier) ON DELETE CASCADE,
    doc       TEXT NOT NULL,
    CONSTRAINT client_grants_client_audience_key UNIQUE (client_id, audience)
);
CREATE INDEX client_grants_by_audience ON client_grants (audience, seq);
CREATE INDEX client_grants_by_client ON client_grants (client_id, seq);

CREATE TABLE signing_keys (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kid          TEXT NOT NULL UNIQUE,
    sealed_pkcs8 BYTEA NOT NULL,
    doc          TEXT NOT NULL
);

-- Used client-assertion ids (private_key_jwt), kept until the assertion's exp + skew.
-- Shared by every node: an assertion accepted by one node is a replay on all others.
-- `jti` is the claim's UTF-8 bytes: any string, NUL included (TEXT cannot hold NUL).
CREATE TABLE assertion_replay (
    client_id  TEXT NOT NULL,
    jti        BYTEA NOT NULL,
    expires_at BIGINT NOT NULL, -- Unix seconds
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_replay_by_expiry ON assertion_replay (expires_at);
