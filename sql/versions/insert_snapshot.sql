INSERT INTO marts.snapshots
    (snapshot_id, published_at, run_id, partition_key, as_of, settings, "tables", is_current)
VALUES
    ($snapshot_id, $published_at, $run_id, $partition_key, $as_of, $settings, $tables, $is_current)
