-- GET /api/v2/clients at a million clients (the bench's scale phase).
--
-- Offset paging in creation order finds a page's positions in this narrow index: the clients'
-- rowid table holds whole documents, and an offset of a million read half a gigabyte of rows.
CREATE INDEX clients_by_seq ON clients (seq);

-- The number of clients, kept by the triggers below, for include_totals (and every offset
-- page): COUNT(*) walked an index of every client.
CREATE TABLE row_counts (
    name TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
);
INSERT INTO row_counts (name, n) SELECT 'clients', COUNT(*) FROM clients;
CREATE TRIGGER clients_counted_in AFTER INSERT ON clients
BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'clients';
END;
CREATE TRIGGER clients_counted_out AFTER DELETE ON clients
BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'clients';
END;
