UPDATE marts.snapshot_log SET settings = $settings WHERE snapshot_id = $id
