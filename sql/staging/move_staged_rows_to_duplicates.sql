-- Staged rows of a key an earlier file's repeat is owed (rows_owed: source_file, source_row,
-- registered by the caller; rows_owed_to_earlier_repeats.sql) join the rows held back for a
-- repeated key (duplicate_rows), typed as staged, to be quarantined as duplicate_key.
-- {table} and {columns}: the source's name and its staged columns (the allow-list).
INSERT INTO duplicate_rows
SELECT 'already staged from an earlier file' AS detail, {columns}
FROM staging.{table} AS s
SEMI JOIN rows_owed AS o ON o.source_file = s.source_file AND o.source_row = s.source_row
