-- The pairs of versions marts.segment_migration holds.
SELECT DISTINCT from_snapshot, to_snapshot FROM marts.segment_migration
