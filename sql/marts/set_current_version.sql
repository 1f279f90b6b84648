-- Point marts.current_version at $snapshot_id (the one row is created by the first publish).
INSERT OR REPLACE INTO marts.current_version (singleton, snapshot_id) VALUES (true, $snapshot_id)
