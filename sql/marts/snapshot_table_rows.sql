-- Rows per mart of version $id, as its log recorded them at publish (JSON: mart -> count).
SELECT "tables" FROM marts.snapshot_log WHERE snapshot_id = $id
