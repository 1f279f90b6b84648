DELETE FROM staging.quarantine WHERE source = $source AND list_contains($files, source_file)
