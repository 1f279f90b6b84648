-- Unstage the rows hold_back_repeated_rows.sql moved to duplicate_rows (a row is identified by
-- its file and row number). {table} comes from the contracts' allow-list.
DELETE FROM staging.{table} AS t
USING duplicate_rows AS d
WHERE t.source_file = d.source_file AND t.source_row = d.source_row
