-- The Dagster run that published version $id (NULL when none was recorded).
SELECT run_id FROM marts.snapshot_log WHERE snapshot_id = $id
