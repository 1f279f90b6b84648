-- The rows of one as-of. Filled by the caller (a template): {columns} is `*`,
-- `* EXCLUDE (as_of)` or a list of quoted columns; {table} the quoted schema.table.
-- Parameters: $as_of (DATE).
SELECT {columns} FROM {table} WHERE as_of = $as_of
