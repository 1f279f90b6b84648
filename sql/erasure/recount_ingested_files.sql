-- The files an erasure deleted rows of ($files, of the source $source): how many rows each
-- stages and quarantines now, counted again from the tables, so read = staged + quarantined +
-- erased holds per file (staging.erased_rows holds the rows kept out). {table}: the source's
-- staged table (the allow-list).
UPDATE staging.ingested_files AS f
SET
    rows_staged = (
        SELECT count(*) FROM staging.{table} AS s WHERE s.source_file = f.source_file
    ),
    rows_quarantined = (
        SELECT count(*) FROM staging.quarantine AS q
        WHERE q.source = $source AND q.source_file = f.source_file
    )
WHERE f.source = $source AND list_contains($files, f.source_file)
