-- The retained version a version is compared with: the latest as-of date not after $as_of
-- (then the newest publish) among versions published before $before_snapshot.
SELECT snapshot_id
FROM marts.snapshots
WHERE expired_at IS NULL
  AND snapshot_id < $before_snapshot
  AND (as_of IS NULL OR $as_of IS NULL OR as_of <= CAST($as_of AS DATE))
ORDER BY as_of DESC NULLS LAST, snapshot_id DESC
LIMIT 1
