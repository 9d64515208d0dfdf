-- Clavis schema, SQLite. Documents are JSON text; columns exist only where queried.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE clients (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id     TEXT NOT NULL UNIQUE,
    doc           TEXT NOT NULL,
    sealed_secret BLOB
);

CREATE TABLE credentials (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    doc       TEXT NOT NULL
);
CREATE INDEX credentials_by_client ON credentials (client_id, seq);

CREATE TABLE resource_servers (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    identifier TEXT NOT NULL UNIQUE,
    doc        TEXT NOT NULL
);

CREATE TABLE client_grants (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    audience  TEXT NOT NULL REFERENCES resource_servers (identifier) ON DELETE CASCADE,
    doc       TEXT NOT NULL,
    UNIQUE (client_id, audience)
);
CREATE INDEX client_grants_by_audience ON client_grants (audience, seq);

CREATE TABLE signing_keys (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    kid          TEXT NOT NULL UNIQUE,
    sealed_pkcs8 BLOB NOT NULL,
    doc          TEXT NOT NULL
);
