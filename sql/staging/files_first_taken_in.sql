-- A source's files as staging.ingested_files records them: the path its rows were staged from,
-- when it was last taken in, and when first (NULL: recorded before first_taken_in).
SELECT source_file, ingested_at, first_taken_in
FROM staging.ingested_files
WHERE source = $source
