-- name: insert_key
INSERT INTO api_keys (id, connection_id, hash, prefix, scopes, name)
VALUES (%(id)s, %(connection_id)s, %(hash)s, %(prefix)s, %(scopes)s, %(name)s)

-- name: lookup_key
-- Every authenticated request runs this: one index probe on the unique hash.
SELECT id, connection_id::text, scopes, revoked_at IS NOT NULL
FROM api_keys WHERE hash = %(hash)s

-- name: list_keys
SELECT id, connection_id::text, prefix, scopes, name, created_at, revoked_at
FROM api_keys WHERE connection_id = %(connection_id)s
ORDER BY created_at, id

-- name: revoke_key
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = %(id)s
RETURNING id

-- name: keys_granting
-- Of these key ids, the ones not revoked whose scopes grant the scope (admin grants all):
-- open streams are checked against it, so a revocation or a lost scope ends them.
SELECT id FROM api_keys
WHERE id = ANY(%(ids)s) AND revoked_at IS NULL
  AND (%(scope)s = ANY(scopes) OR 'admin' = ANY(scopes))
