-- Warehouses from before marts.snapshot_log: their marts.snapshots table becomes the log. The
-- version marts.* holds is the newest publish that was marked current.
INSERT INTO marts.snapshot_log
    (snapshot_id, published_at, run_id, partition_key, as_of, settings, "tables", expired_at)
SELECT snapshot_id, published_at, run_id, partition_key, as_of, settings, "tables", expired_at
FROM marts.snapshots
