-- Organizations (machine-to-machine access on behalf of a customer) and the client grants
-- associated with each. An association goes with its organization or its grant.
CREATE TABLE organizations (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    id   TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    doc  TEXT NOT NULL
);

CREATE TABLE organization_client_grants (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    grant_id        TEXT NOT NULL REFERENCES client_grants (id) ON DELETE CASCADE,
    UNIQUE (organization_id, grant_id)
);
CREATE INDEX organization_client_grants_by_grant ON organization_client_grants (grant_id, seq);
