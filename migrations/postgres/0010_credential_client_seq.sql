-- Each credential carries its client's position (`clients.seq`), so that a node's start-up
-- reads the clients and the credentials as two index-ordered passes in the same order and
-- merges them as the rows arrive. The alternative, one credentials lookup per client, took
-- most of a start-up at a million clients. The trigger fills the column on every insert;
-- a credential never changes client and a client's `seq` never changes.
ALTER TABLE credentials ADD COLUMN client_seq BIGINT;
UPDATE credentials cr SET client_seq = c.seq FROM clients c WHERE c.client_id = cr.client_id;
ALTER TABLE credentials ALTER COLUMN client_seq SET NOT NULL;
CREATE INDEX credentials_by_client_seq ON credentials (client_seq, seq);

CREATE FUNCTION credentials_client_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT seq INTO NEW.client_seq FROM clients WHERE client_id = NEW.client_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER credentials_client_seq BEFORE INSERT OR UPDATE OF client_id ON credentials
    FOR EACH ROW EXECUTE FUNCTION credentials_client_seq();
