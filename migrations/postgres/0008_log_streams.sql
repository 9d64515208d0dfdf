-- Log streams (`/api/v2/log-streams`, Auth0's `http` type). `doc` is the stream as served
-- without its authorization header, which is sealed at rest in `sealed_authorization`;
-- `cursor` is the sequence number of the last event delivered (a new stream starts after
-- the events that existed when it was created); `failing_since_ms` is when the current run
-- of failed deliveries began; `lease_owner`/`lease_until_ms` let one node at a time deliver
-- a stream (taken with a conditional UPDATE, so two nodes cannot both hold it).
CREATE TABLE log_streams (
    seq                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                   TEXT NOT NULL UNIQUE,
    doc                  TEXT NOT NULL,
    sealed_authorization BYTEA,
    cursor               BIGINT NOT NULL DEFAULT 0,
    failing_since_ms     BIGINT,
    lease_owner          TEXT,
    lease_until_ms       BIGINT NOT NULL DEFAULT 0
);
