-- (source, path, sha256) of every export file taken in that stages a row, in that order: a
-- header-only file, or one whose rows were all quarantined, changes no staged row.
SELECT source, source_file, sha256 FROM staging.ingested_files
WHERE rows_staged > 0
ORDER BY ALL
