-- A changed file replaces what it staged before: its erased-row counts go with it (the ingest
-- suppresses erased people again on the re-read and records them anew).
DELETE FROM staging.erased_rows WHERE source = $source AND list_contains($files, source_file)
