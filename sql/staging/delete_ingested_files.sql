DELETE FROM staging.ingested_files WHERE source = $source AND list_contains($files, source_file)
