-- A client holds at most one grant per (audience, subject_type), as in Auth0: a `client` grant
-- (machine-to-machine tokens) and a `user` grant (user flows) may exist side by side.
ALTER TABLE client_grants ADD COLUMN subject_type TEXT NOT NULL DEFAULT 'client';
UPDATE client_grants SET subject_type = COALESCE(doc::jsonb #>> '{extra,subject_type}', 'client');
ALTER TABLE client_grants DROP CONSTRAINT client_grants_client_audience_key;
ALTER TABLE client_grants ADD CONSTRAINT client_grants_client_audience_subject_key
    UNIQUE (client_id, audience, subject_type);
