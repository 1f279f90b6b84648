INSERT INTO marts.snapshot_log
    (snapshot_id, published_at, run_id, partition_key, as_of, settings, "tables",
     inputs_fingerprint)
VALUES
    ($snapshot_id, $published_at, $run_id, $partition_key, $as_of, $settings, $tables,
     $inputs_fingerprint)
