-- The version in the migration chain (see chain.sql) computed from exactly these inputs, if any.
WITH chain AS (
    SELECT snapshot_id, inputs_fingerprint
    FROM marts.snapshot_log
    WHERE expired_at IS NULL
    QUALIFY row_number() OVER (PARTITION BY as_of ORDER BY snapshot_id DESC) = 1
)
SELECT snapshot_id FROM chain WHERE inputs_fingerprint = $fingerprint
