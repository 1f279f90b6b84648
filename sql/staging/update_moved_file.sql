-- The file taken in from $file is now at $moved_to (NULL: moved back), with its new stat.
UPDATE staging.ingested_files
SET moved_to = $moved_to, size_bytes = $size, mtime_ns = $mtime, ctime_ns = $ctime
WHERE source = $source AND source_file = $file
