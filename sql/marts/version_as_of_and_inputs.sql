-- The as-of and the inputs' fingerprint of one version (`cli._report_standing_partitions`).
-- Parameters: $id (BIGINT).
SELECT as_of, inputs_fingerprint FROM marts.snapshot_log WHERE snapshot_id = $id
