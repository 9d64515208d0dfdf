-- Offset pages of GET /api/v2/clients at a million clients without a long walk.
--
-- SQLite finds the 500,000th client only by stepping over the 499,999 before it in an index
-- (about 12 ms at a million). This table keeps a sample of positions in creation order: the
-- client at position 0, and every 1,024th client appended after it. A page starts at the
-- nearest sample at or before its offset and walks fewer than 1,024 entries from there.
--
-- The triggers keep every sample exact within the writing transaction: an insert before a
-- sample moves it up by one, a delete before it moves it down, and a deleted sampled client
-- hands its sample to the client after it. Gaps between samples only shrink under deletes;
-- appends (every insert Clavis makes: `seq` only grows) take their position from the count
-- and open a new sample once the last gap reaches 1,024. The 1,024 is written here three
-- times; `sqlite_position_samples_are_exact` (tests/store.rs) fails if they disagree.
CREATE TABLE client_positions (
    seq INTEGER PRIMARY KEY,
    pos INTEGER NOT NULL
);
CREATE INDEX client_positions_by_pos ON client_positions (pos);

INSERT INTO client_positions (seq, pos)
SELECT seq, pos FROM (SELECT seq, ROW_NUMBER() OVER (ORDER BY seq) - 1 AS pos FROM clients)
WHERE pos % 1024 = 0;

-- One trigger per direction keeps both the count (0011) and the samples, so that an append's
-- position is the count it has just raised.
DROP TRIGGER clients_counted_in;
DROP TRIGGER clients_counted_out;

CREATE TRIGGER clients_counted_in AFTER INSERT ON clients
BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'clients';
    UPDATE client_positions SET pos = pos + 1 WHERE seq > NEW.seq;
    INSERT INTO client_positions (seq, pos)
    SELECT NEW.seq, placed.pos FROM (
        SELECT CASE WHEN EXISTS (SELECT 1 FROM clients WHERE seq > NEW.seq)
            THEN (SELECT COUNT(*) FROM clients INDEXED BY clients_by_seq WHERE seq < NEW.seq)
            ELSE (SELECT n - 1 FROM row_counts WHERE name = 'clients')
        END AS pos
    ) AS placed
    WHERE placed.pos - COALESCE(
        (SELECT pos FROM client_positions WHERE seq < NEW.seq ORDER BY seq DESC LIMIT 1),
        -1024) >= 1024;
END;

CREATE TRIGGER clients_counted_out AFTER DELETE ON clients
BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'clients';
    INSERT OR IGNORE INTO client_positions (seq, pos)
    SELECT (SELECT MIN(seq) FROM clients WHERE seq > OLD.seq), pos + 1
      FROM client_positions
     WHERE seq = OLD.seq AND EXISTS (SELECT 1 FROM clients WHERE seq > OLD.seq);
    DELETE FROM client_positions WHERE seq = OLD.seq;
    UPDATE client_positions SET pos = pos - 1 WHERE seq > OLD.seq;
END;
