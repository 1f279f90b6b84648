-- Retention: keep the newest $keep_versions versions that are younger than $keep_days days;
-- the current version (the one in marts.*) is always kept.
WITH live AS (
    SELECT snapshot_id, published_at,
           row_number() OVER (ORDER BY snapshot_id DESC) AS newest_rank
    FROM marts.snapshot_log
    WHERE expired_at IS NULL
)
SELECT snapshot_id
FROM live
WHERE snapshot_id NOT IN (SELECT snapshot_id FROM marts.current_version)
  AND (newest_rank > $keep_versions
       OR published_at < CAST($now AS TIMESTAMP) - to_days(CAST($keep_days AS INTEGER)))
ORDER BY snapshot_id
