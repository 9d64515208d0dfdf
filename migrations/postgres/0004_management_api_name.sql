-- The Management API's system resource server takes Auth0's exact name, "Auth0 Management API"
-- (src/domain/resource_server.rs MANAGEMENT_API_NAME): tools such as auth0-deploy-cli recognise
-- it only by that name. Renames it in stores created under the earlier name.
UPDATE resource_servers
SET doc = jsonb_set(doc::jsonb, '{name}', to_jsonb('Auth0 Management API'::text))::text
WHERE doc::jsonb -> 'is_system' = 'true'::jsonb
  AND doc::jsonb ->> 'name' = 'Clavis Management API';
