-- The content hash of every file of a source taken in, in path order.
SELECT sha256, source_file FROM staging.ingested_files WHERE source = $source
ORDER BY source_file
