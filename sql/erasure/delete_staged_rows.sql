-- The same for a staged source, returning the export file of every deleted row (the
-- reconciliation counts erased rows per file). {table} and {column} come from the allow-list.
DELETE FROM staging.{table}
WHERE list_contains($values::VARCHAR[], erasure_normalized({column}, $kind))
RETURNING source_file
