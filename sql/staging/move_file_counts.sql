-- A file's rows moved from the quarantine to the staged table (a duplicate staged again).
UPDATE staging.ingested_files
SET rows_staged = rows_staged + $rows, rows_quarantined = rows_quarantined - $rows
WHERE source = $source AND source_file = $file
