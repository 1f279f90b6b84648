-- Add erased rows of one export file to the running count.
INSERT INTO staging.erased_rows AS e (source, source_file, rows)
VALUES ($source, $source_file, $rows)
ON CONFLICT (source, source_file) DO UPDATE SET rows = e.rows + excluded.rows
