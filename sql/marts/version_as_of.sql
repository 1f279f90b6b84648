-- One version's as-of date (no row for an id never published).
-- Parameters: $snapshot_id (BIGINT).
SELECT as_of FROM marts.snapshot_log WHERE snapshot_id = $snapshot_id
