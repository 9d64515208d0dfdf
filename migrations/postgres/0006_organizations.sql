-- Organizations (machine-to-machine access on behalf of a customer) and the client grants
-- associated with each. An association goes with its organization or its grant.
CREATE TABLE organizations (
    seq  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id   TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    doc  TEXT NOT NULL
);

CREATE TABLE organization_client_grants (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    grant_id        TEXT NOT NULL
        CONSTRAINT organization_client_grants_grant_fkey REFERENCES client_grants (id) ON DELETE CASCADE,
    CONSTRAINT organization_client_grants_key UNIQUE (organization_id, grant_id)
);
CREATE INDEX organization_client_grants_by_grant ON organization_client_grants (grant_id, seq);
