-- name: insert_queue_samples
INSERT INTO queue_samples (connection_id, name, sampled_at, depth, consumers)
SELECT %(connection_id)s, u.name, to_timestamp(u.sampled_at), u.depth, u.consumers
FROM unnest(%(name)b::text[], %(sampled_at)b::float8[], %(depth)b::bigint[],
            %(consumers)b::int[]) AS u(name, sampled_at, depth, consumers)
ON CONFLICT DO NOTHING

-- name: upsert_queues
INSERT INTO queues AS q (connection_id, name, depth, consumers, sampled_at, sample_key)
SELECT %(connection_id)s, u.name, u.depth, u.consumers, to_timestamp(u.sampled_at), u.sample_key
FROM unnest(%(name)b::text[], %(depth)b::bigint[], %(consumers)b::int[],
            %(sampled_at)b::float8[], %(sample_key)b::text[])
     AS u(name, depth, consumers, sampled_at, sample_key)
ON CONFLICT (connection_id, name) DO UPDATE SET
    depth = EXCLUDED.depth, consumers = EXCLUDED.consumers, sampled_at = EXCLUDED.sampled_at,
    sample_key = EXCLUDED.sample_key
WHERE (EXCLUDED.sampled_at, EXCLUDED.sample_key) > (q.sampled_at, q.sample_key)
