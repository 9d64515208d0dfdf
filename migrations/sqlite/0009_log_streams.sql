-- Log streams (`/api/v2/log-streams`, Auth0's `http` type). `doc` is the stream as served
-- without its authorization header, which is sealed at rest in `sealed_authorization`;
-- `cursor` is the sequence number of the last event delivered (a new stream starts after
-- the events that existed when it was created); `failing_since_ms` is when the current run
-- of failed deliveries began; `lease_owner`/`lease_until_ms` let one node at a time deliver.
CREATE TABLE log_streams (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   TEXT NOT NULL UNIQUE,
    doc                  TEXT NOT NULL,
    sealed_authorization BLOB,
    cursor               INTEGER NOT NULL DEFAULT 0,
    failing_since_ms     INTEGER,
    lease_owner          TEXT,
    lease_until_ms       INTEGER NOT NULL DEFAULT 0
);
