-- The rows held back for a repeated key (create_duplicate_rows.sql), in file and row order.
SELECT * FROM duplicate_rows ORDER BY source_file, source_row
