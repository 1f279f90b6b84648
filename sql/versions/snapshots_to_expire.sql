-- Retention: keep the newest $keep_versions versions that are younger than $keep_days days;
-- the current version (the one in marts.*) is always kept.
WITH live AS (
    SELECT snapshot_id, published_at, is_current,
           row_number() OVER (ORDER BY snapshot_id DESC) AS newest_rank
    FROM marts.snapshots
    WHERE expired_at IS NULL
),
current_version AS (
    SELECT max(snapshot_id) AS snapshot_id FROM marts.snapshots WHERE is_current
)
SELECT snapshot_id
FROM live
WHERE snapshot_id <> (SELECT snapshot_id FROM current_version)
  AND (newest_rank > $keep_versions
       OR published_at < CAST($now AS TIMESTAMP) - to_days(CAST($keep_days AS INTEGER)))
ORDER BY snapshot_id
