-- The tenant's settings (`/api/v2/tenants/settings`): one JSON document, one row.
CREATE TABLE tenant_settings (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    doc TEXT NOT NULL
);

-- Token quotas: the tokens counted in each bucket (`client:<id>:per_hour`,
-- `organization:<id>:per_day`, ...) for the UTC hour or day starting at `window_start`
-- (Unix seconds). The node reserves blocks of the remaining quota from here and spends
-- them in memory; a reservation never takes `used` beyond the quota.
CREATE TABLE token_quota_usage (
    bucket       TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    used         INTEGER NOT NULL,
    -- What the last reservation granted (set in the same statement, for its answer).
    last_grant   INTEGER NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
