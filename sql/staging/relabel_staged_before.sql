-- Rows held back while appending (a key repeated inside one batch) whose key was staged by an
-- earlier ingest: say so, as for the rows held back after appending. {table} and {key} come
-- from the contracts' allow-list.
UPDATE duplicate_rows
SET detail = 'already staged from an earlier file'
WHERE {key} IN (
    SELECT {key} FROM staging.{table} WHERE NOT list_contains($files, source_file)
)
