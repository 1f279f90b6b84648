-- The marts.snapshots table of a warehouse from before marts.snapshot_log, once adopted
-- (adopt_snapshots_table.sql, adopt_current_version.sql): the view takes its name.
DROP TABLE marts.snapshots
