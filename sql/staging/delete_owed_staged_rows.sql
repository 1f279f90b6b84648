-- The staged rows move_staged_rows_to_duplicates.sql moved to the repeats (rows_owed, registered
-- by the caller). {table}: the source's staged table (the allow-list).
DELETE FROM staging.{table} AS s
USING rows_owed AS o
WHERE s.source_file = o.source_file AND s.source_row = o.source_row
