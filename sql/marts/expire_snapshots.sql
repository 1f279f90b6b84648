UPDATE marts.snapshot_log SET expired_at = $now WHERE list_contains($expired, snapshot_id)
