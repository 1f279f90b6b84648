-- The version marts.* holds from now (the one row of marts.current_version).
INSERT OR REPLACE INTO marts.current_version (singleton, snapshot_id)
VALUES (true, $snapshot_id)
