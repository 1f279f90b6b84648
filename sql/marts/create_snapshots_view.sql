-- What analysts query: one row per publish; `is_current` is true for exactly the version in
-- `marts.*` (the one row of marts.current_version), so
-- `marts.customer_rfm_at((SELECT snapshot_id FROM marts.snapshots WHERE is_current))` always works.
CREATE VIEW IF NOT EXISTS marts.snapshots AS
SELECT
    l.snapshot_id,
    l.published_at,
    l.run_id,
    l.partition_key,
    l.as_of,
    l.settings,
    l."tables",
    coalesce(l.snapshot_id = c.snapshot_id, false) AS is_current,
    l.inputs_fingerprint,
    l.expired_at
FROM marts.snapshot_log AS l
LEFT JOIN marts.current_version AS c ON true
