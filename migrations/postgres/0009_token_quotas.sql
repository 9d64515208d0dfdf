-- The tenant's settings (`/api/v2/tenants/settings`): one JSON document, one row.
CREATE TABLE tenant_settings (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    doc TEXT NOT NULL
);

-- Token quotas: the tokens counted in each bucket (`client:<id>:per_hour`,
-- `organization:<id>:per_day`, ...) for the UTC hour or day starting at `window_start`
-- (Unix seconds), shared by every node. Nodes reserve blocks of the remaining quota from
-- here (one upsert ... RETURNING) and spend them locally; a reservation never takes `used`
-- beyond the quota.
CREATE TABLE token_quota_usage (
    bucket       TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    used         BIGINT NOT NULL,
    -- What the last reservation granted (set in the same statement, for its answer).
    last_grant   BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
