INSERT INTO marts.snapshots VALUES
    ($snapshot_id, $published_at, $run_id, $partition_key, $as_of, $settings, $tables)
