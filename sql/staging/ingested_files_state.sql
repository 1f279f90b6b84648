-- The ingests' part of the published file's token (`readers.state`): what each file brought (a
-- changed file that stages no row changes its hash and counts, and the quarantine rows the
-- published file copies), and where it is now (`moved_to`: a file moved after it was taken in).
-- Not its stat, which a touch moves. A warehouse from before `moved_to`:
-- sql/staging/ingested_files_state_before_moved_to.sql.
SELECT
    count(*),
    bit_xor(hash(
        source, source_file, sha256, rows_read, rows_staged, rows_quarantined, ingested_at, moved_to
    ))
FROM staging.ingested_files
