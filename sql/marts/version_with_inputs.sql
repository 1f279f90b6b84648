-- The version of the migration chain ($chain: chain.sql's ids) computed from exactly these
-- inputs, if any.
SELECT snapshot_id
FROM marts.snapshot_log
WHERE list_contains($chain, snapshot_id) AND inputs_fingerprint = $fingerprint
