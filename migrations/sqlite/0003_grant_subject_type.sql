-- A client holds at most one grant per (audience, subject_type), as in Auth0: a `client` grant
-- (machine-to-machine tokens) and a `user` grant (user flows) may exist side by side. SQLite
-- cannot change a UNIQUE constraint in place, so the table is rebuilt, keeping every row's seq
-- and the AUTOINCREMENT counter (checkpoint paging never sees a seq twice).
ALTER TABLE client_grants RENAME TO client_grants_old;

CREATE TABLE client_grants (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    client_id    TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    audience     TEXT NOT NULL REFERENCES resource_servers (identifier) ON DELETE CASCADE,
    subject_type TEXT NOT NULL DEFAULT 'client',
    doc          TEXT NOT NULL,
    UNIQUE (client_id, audience, subject_type)
);

INSERT INTO client_grants (seq, id, client_id, audience, subject_type, doc)
SELECT seq, id, client_id, audience,
       COALESCE(json_extract(doc, '$.extra.subject_type'), 'client'), doc
FROM client_grants_old;

DELETE FROM sqlite_sequence WHERE name = 'client_grants';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'client_grants', seq FROM sqlite_sequence WHERE name = 'client_grants_old';

DROP TABLE client_grants_old;
CREATE INDEX client_grants_by_audience ON client_grants (audience, seq);
