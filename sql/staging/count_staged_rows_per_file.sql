-- The rows of a staged table ({table}) per file, for the files of $files.
SELECT source_file, count(*) FROM staging.{table}
WHERE list_contains($files, source_file) GROUP BY source_file
