-- What the files of $files quarantined before: a changed file replaces it.
DELETE FROM staging.quarantine WHERE source = $source
AND list_contains($files, source_file)
