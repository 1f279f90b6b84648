-- The versions that published {mart} ({mart}: a mart name from the allow-list).
SELECT DISTINCT snapshot_id FROM history.{mart}
