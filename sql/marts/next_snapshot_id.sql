SELECT coalesce(max(snapshot_id), 0) + 1 FROM marts.snapshot_log
