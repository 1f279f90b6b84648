-- The versions segment migration runs along: every retained version in as-of order, one per
-- as-of (its newest publish stands for it), but for versions a later run replaced. A version
-- is replaced when a newer one, published for its as-of's month or a later month, has an
-- earlier as-of: the data moved back under it (its last completed orders cancelled, their
-- buyer erased), and the newer run's as-of is as far as the data goes now. A backfill (a run
-- for an earlier month) and a version without a partition (a pinned as-of) replace none.
-- Versions without an as-of come last, each replacing the previous one without an as-of.
WITH retained AS (
    SELECT snapshot_id, as_of, partition_key
    FROM marts.snapshot_log
    WHERE expired_at IS NULL
),

standing AS (
    SELECT v.snapshot_id, v.as_of
    FROM retained AS v
    WHERE NOT EXISTS (
        SELECT 1
        FROM retained AS w
        WHERE w.snapshot_id > v.snapshot_id
            AND w.as_of < v.as_of
            AND CAST(w.partition_key AS DATE) >= date_trunc('month', v.as_of)
    )
)

SELECT snapshot_id, as_of
FROM standing
QUALIFY row_number() OVER (PARTITION BY as_of ORDER BY snapshot_id DESC) = 1
ORDER BY as_of NULLS LAST, snapshot_id
