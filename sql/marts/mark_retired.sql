-- The log row of the version `engagement-box retire` retires stays, as an audit trail: expired
-- (so every query of the retained versions leaves it out, as retention's do) and marked retired,
-- with when and the operator's reason. Parameters: $snapshot_id, $now, $reason (NULL: none given).
UPDATE marts.snapshot_log
SET expired_at = $now, retired_at = $now, retired_reason = $reason
WHERE snapshot_id = $snapshot_id
