-- The audit trail (`/api/v2/logs`): one row per event. `seq` is the log_id's number, assigned
-- at insert, so it sorts in the order the events were written; the document is the event as
-- served (without its log_id), the other columns are the fields the search query reads.
CREATE TABLE logs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    date_ms     INTEGER NOT NULL, -- Unix milliseconds of `date`
    type        TEXT NOT NULL,
    client_id   TEXT,
    client_name TEXT,
    description TEXT,
    ip          TEXT,
    hostname    TEXT,
    user_agent  TEXT,
    audience    TEXT,
    scope       TEXT,
    doc         TEXT NOT NULL
);
CREATE INDEX logs_by_date ON logs (date_ms, seq);
CREATE INDEX logs_by_type ON logs (type, seq);
CREATE INDEX logs_by_client ON logs (client_id, seq);
