-- The same for a staged source, returning the export file of every deleted row (the
-- reconciliation counts erased rows per file). {table} and {column} come from the allow-list.
DELETE FROM staging.{table}
WHERE erasure_holds({column}, $values::VARCHAR[], $kind)
RETURNING source_file
