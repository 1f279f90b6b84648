-- What `engagement-box retire` checks of a version before it retires it: its as-of, whether it
-- expired (and was retired, with why) and whether it is current. No row: never published.
-- Parameters: $snapshot_id.
SELECT as_of, expired_at, retired_at, retired_reason, is_current
FROM marts.snapshots
WHERE snapshot_id = $snapshot_id
