-- The $n newest versions the retention policy kept (marts.snapshots also lists the expired ones).
SELECT snapshot_id, as_of, is_current, published_at
FROM marts.snapshots
WHERE expired_at IS NULL
ORDER BY snapshot_id DESC
LIMIT $n
