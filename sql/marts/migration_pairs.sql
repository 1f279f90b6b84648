-- The pairs marts.segment_migration holds now.
SELECT DISTINCT from_snapshot, to_snapshot FROM marts.segment_migration
