SELECT source_file, sha256, size_bytes, mtime_ns
FROM staging.ingested_files
WHERE source = $source
