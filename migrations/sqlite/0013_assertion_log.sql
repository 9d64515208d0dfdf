-- Used client-assertion ids (private_key_jwt), in the order they were accepted.
--
-- On SQLite the replay guard decides ids in memory (one process uses the store) and this
-- table is its durable copy, written behind and read back at start. Keyed by (client_id,
-- jti), every id landed on a page of its own: an id's place in that order is random (real
-- clients send random jtis), so each write-behind transaction rewrote about one page per id
-- (4 KiB of log, checkpointed again into the file), and each purge deleted rows scattered
-- over the whole table. In acceptance order, a transaction appends its ids to the last
-- pages, and a purge deletes from the front: the oldest ids, which expire first.
CREATE TABLE assertion_log (
    seq        INTEGER PRIMARY KEY,
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL -- Unix seconds
);
INSERT INTO assertion_log (client_id, jti, expires_at)
    SELECT client_id, jti, expires_at FROM assertion_replay ORDER BY expires_at;
DROP TABLE assertion_replay;
