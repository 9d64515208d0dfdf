-- A Management API write commits without waiting for the disk (`synchronous_commit = off`
-- for its transaction), so that the next writes need not wait behind its fsync; before it is
-- acknowledged, one `setval` on this sequence, committed with the server's own
-- `synchronous_commit`, flushes the WAL up to itself and so every commit before it: one
-- flush for all the writes waiting at that moment. `setval` writes WAL under a transaction
-- id but locks no row and leaves no dead tuple; the value is never read.
CREATE SEQUENCE durability_mark;
