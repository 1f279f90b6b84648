-- A version's row count per mart when it was published (JSON).
SELECT "tables" FROM marts.snapshot_log WHERE snapshot_id = $id
