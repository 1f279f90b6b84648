-- A file's new stat when its content is what was staged (touched, copied).
UPDATE staging.ingested_files
SET size_bytes = $size, mtime_ns = $mtime, ctime_ns = $ctime
WHERE source = $source AND source_file = $file
