-- sql/staging/ingested_files_state.sql for a staging.ingested_files from before its `moved_to`
-- column: the same hash without it.
SELECT
    count(*),
    bit_xor(hash(
        source, source_file, sha256, rows_read, rows_staged, rows_quarantined, ingested_at
    ))
FROM staging.ingested_files
