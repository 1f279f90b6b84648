-- What the files of $files staged before ({table}: the source's name): a changed file
-- replaces it.
DELETE FROM staging.{table}
WHERE list_contains($files, source_file)
