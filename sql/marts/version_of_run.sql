-- The version a run published, with its as-of (no row: it published none).
-- Parameters: $run_id (VARCHAR).
SELECT snapshot_id, as_of FROM marts.snapshot_log WHERE run_id = $run_id
ORDER BY snapshot_id DESC LIMIT 1
