-- The versions segment migration runs along: every retained version in as-of order that no newer
-- run replaces. A newer run replaces the earlier versions of its partition (the month it was run
-- for: a rerun of a month whose data moved back, after an order was cancelled or a person erased,
-- has an earlier as-of and still replaces that month's version), and the earlier version of its
-- as-of (the newest publish stands for it). Versions without a partition replace none by it;
-- versions without an as-of come last, each replacing the previous one without an as-of.
WITH standing AS (
    SELECT snapshot_id, as_of
    FROM marts.snapshot_log
    WHERE expired_at IS NULL
    QUALIFY partition_key IS NULL
        OR row_number() OVER (PARTITION BY partition_key ORDER BY snapshot_id DESC) = 1
)
SELECT snapshot_id, as_of
FROM standing
QUALIFY row_number() OVER (PARTITION BY as_of ORDER BY snapshot_id DESC) = 1
ORDER BY as_of NULLS LAST, snapshot_id
