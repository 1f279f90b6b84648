-- The day of the last completed order staged (NULL: none): the as-of when none is pinned.
SELECT max(CAST(ordered_at AS DATE)) FROM staging.orders WHERE status = 'completed'
