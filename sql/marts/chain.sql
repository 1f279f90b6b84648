-- The versions segment migration runs along: every retained version in as-of order, where a
-- rerun of an as-of replaces the earlier version of that as-of (the newest publish stands for
-- it). Versions without an as-of come last; each replaces the previous one without an as-of.
SELECT snapshot_id, as_of
FROM marts.snapshot_log
WHERE expired_at IS NULL
QUALIFY row_number() OVER (PARTITION BY as_of ORDER BY snapshot_id DESC) = 1
ORDER BY as_of NULLS LAST, snapshot_id
