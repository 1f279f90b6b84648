-- The staged rows of the keys of repeated_keys (a frame registered by the caller). {table} and
-- {key}: the source's name and its key columns.
SELECT * FROM staging.{table}
SEMI JOIN repeated_keys USING ({key})
