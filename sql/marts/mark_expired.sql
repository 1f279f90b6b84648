-- The log rows of the versions retention expires stay, as an audit trail, with when.
UPDATE marts.snapshot_log SET expired_at = $now WHERE list_contains($expired, snapshot_id)
