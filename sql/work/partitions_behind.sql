-- The tables whose rows of one as-of followed other inputs than those of now, or failed a
-- blocking check (partitioned.py's `behind_on`): a step materialized alone with other settings,
-- say, after the as-of's version was published. {registry} is the quoted
-- schema.written_partitions of this release (with `computation` and `failed_checks`).
-- Parameters: $as_of (DATE), $fingerprint (VARCHAR): the inputs now.
SELECT table_name FROM {registry}
WHERE as_of = $as_of AND (computation IS DISTINCT FROM $fingerprint OR failed_checks IS NOT NULL)
ORDER BY table_name
