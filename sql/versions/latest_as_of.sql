-- The as-of date of the current version (NULL before the first publish).
SELECT max(as_of) FROM marts.snapshots
