-- Forget the erased-row counts of a source's files that are being re-ingested (they are read
-- again). $files: VARCHAR[] of source_file values.
DELETE FROM staging.erased_rows WHERE source = $source
AND list_contains($files, source_file)
