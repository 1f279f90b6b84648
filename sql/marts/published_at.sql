SELECT published_at FROM marts.snapshot_log WHERE snapshot_id = $id
