-- name: insert_session
INSERT INTO sessions (id, key_id, csrf_token, expires_at)
VALUES (%(id)s, %(key_id)s, %(csrf_token)s, now() + %(ttl)s)
RETURNING expires_at

-- name: insert_session_key
INSERT INTO session_keys (session_id, key_id) VALUES (%(id)s, %(key_id)s)
ON CONFLICT DO NOTHING

-- name: lookup_session
-- Every request with a session cookie runs this: the session, its active key and whether
-- that key still stands (a revoked key ends its sessions).
SELECT s.key_id, k.connection_id::text, k.scopes, k.revoked_at IS NOT NULL, s.csrf_token,
       s.expires_at
FROM sessions AS s JOIN api_keys AS k ON k.id = s.key_id
WHERE s.id = %(id)s AND s.expires_at > now()

-- name: session_connections
-- The connections a session may switch to: each signed-in key that still stands.
SELECT k.connection_id::text, c.name, k.id, k.prefix, k.scopes, k.id = s.key_id
FROM sessions AS s
JOIN session_keys AS sk ON sk.session_id = s.id
JOIN api_keys AS k ON k.id = sk.key_id AND k.revoked_at IS NULL
JOIN connections AS c ON c.id = k.connection_id
WHERE s.id = %(id)s AND s.expires_at > now()
ORDER BY c.name, k.created_at

-- name: switch_session
UPDATE sessions AS s SET key_id = sk.key_id
FROM session_keys AS sk JOIN api_keys AS k ON k.id = sk.key_id
WHERE s.id = %(id)s AND s.expires_at > now() AND sk.session_id = s.id
  AND k.connection_id = %(connection_id)s::uuid AND k.revoked_at IS NULL
RETURNING s.key_id

-- name: set_active_key
UPDATE sessions SET key_id = %(key_id)s WHERE id = %(id)s AND expires_at > now()
RETURNING key_id

-- name: delete_session
DELETE FROM sessions WHERE id = %(id)s

-- name: delete_key_sessions
-- A revoked key's sessions end (and it leaves the switchers of the others).
WITH ended AS (DELETE FROM sessions WHERE key_id = %(key_id)s RETURNING id)
DELETE FROM session_keys WHERE key_id = %(key_id)s

-- name: purge_expired
WITH s AS (DELETE FROM sessions WHERE expires_at <= now() RETURNING 1),
     t AS (DELETE FROM login_tokens WHERE expires_at <= now() RETURNING 1)
SELECT (SELECT count(*) FROM s) + (SELECT count(*) FROM t)

-- name: insert_login_token
INSERT INTO login_tokens (hash, key_id, expires_at)
VALUES (%(hash)s, %(key_id)s, now() + %(ttl)s)

-- name: redeem_login_token
-- Once: the first redemption marks it used; a second, or a late one, finds nothing.
UPDATE login_tokens SET used_at = now()
WHERE hash = %(hash)s AND used_at IS NULL AND expires_at > now()
RETURNING key_id

-- name: key_by_id
SELECT connection_id::text, scopes, revoked_at IS NOT NULL FROM api_keys WHERE id = %(key_id)s
