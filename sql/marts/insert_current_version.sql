-- In the published file: the version marts.* holds. Parameters: $id (BIGINT).
INSERT INTO marts.current_version (snapshot_id) VALUES ($id)
