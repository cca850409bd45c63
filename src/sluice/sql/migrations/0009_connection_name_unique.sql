-- A connection's name is unique: `sluice connections create NAME` refuses a name in use
-- instead of making a second connection that looks the same in every listing.
-- Names already repeated (before this rule) keep their first holder; the others get their
-- id appended (unique, where a prefix of it might not be).
UPDATE connections AS c
SET name = c.name || ' (' || c.id::text || ')'
WHERE EXISTS (
    SELECT 1 FROM connections AS first
    WHERE first.name = c.name
      AND (first.created_at, first.id) < (c.created_at, c.id)
);

ALTER TABLE connections ADD CONSTRAINT connections_name_key UNIQUE (name);
