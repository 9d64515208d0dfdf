-- The Management API's system resource server takes Auth0's exact name, "Auth0 Management API"
-- (src/domain/resource_server.rs MANAGEMENT_API_NAME): tools such as auth0-deploy-cli recognise
-- it only by that name. Renames it in stores created under the earlier name.
UPDATE resource_servers
SET doc = json_set(doc, '$.name', 'Auth0 Management API')
WHERE json_extract(doc, '$.is_system') = 1
  AND json_extract(doc, '$.name') = 'Clavis Management API';
