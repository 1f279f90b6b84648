-- When the file a source's rows were staged from was first taken in ($first), as ranked by
-- ingestion._rank_files_taken_in_before for files recorded before first_taken_in.
UPDATE staging.ingested_files SET first_taken_in = $first
WHERE source = $source AND source_file = $file
