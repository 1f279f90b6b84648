-- What analysts query: one row per publish; `is_current` is true for exactly the version in
-- `marts.*` (the one row of marts.current_version), so
-- `marts.customer_rfm_at((SELECT snapshot_id FROM marts.snapshots WHERE is_current))` always works;
-- `stands_for_as_of` is true for the one version of an as-of that segment migration runs along
-- (sql/marts/chain.sql, filled in below), so a version can be chosen by its as-of
-- after reruns of it: `... WHERE as_of = DATE '2025-12-31' AND stands_for_as_of`;
-- `retired_at` and `retired_reason` say which expired versions an operator retired by hand
-- (`engagement-box retire`), and why.
CREATE OR REPLACE VIEW marts.snapshots AS
WITH chain AS (
{chain}
)

SELECT
    l.snapshot_id,
    l.published_at,
    l.run_id,
    l.partition_key,
    l.as_of,
    l.settings,
    l."tables",
    coalesce(l.snapshot_id = c.snapshot_id, false) AS is_current,
    ch.snapshot_id IS NOT NULL AS stands_for_as_of,
    l.inputs_fingerprint,
    l.expired_at,
    l.retired_at,
    l.retired_reason
FROM marts.snapshot_log AS l
LEFT JOIN marts.current_version AS c ON true
LEFT JOIN chain AS ch ON l.snapshot_id = ch.snapshot_id
