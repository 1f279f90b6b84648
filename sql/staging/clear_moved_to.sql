-- Every moved file of a source is now a file taken in where it is.
UPDATE staging.ingested_files SET moved_to = NULL
WHERE source = $source AND moved_to IS NOT NULL
