-- The records of the files of $files: a changed file is recorded again.
DELETE FROM staging.ingested_files WHERE source = $source
AND list_contains($files, source_file)
