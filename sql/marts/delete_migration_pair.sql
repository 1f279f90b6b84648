DELETE FROM marts.segment_migration
WHERE from_snapshot = $from_snapshot AND to_snapshot = $to_snapshot
