-- Every pair, computed again after (an erasure changed the versions' rows).
DELETE FROM marts.segment_migration
