-- The rows of one as-of, before that as-of's new rows are inserted (same transaction).
-- Parameters: $as_of (DATE).
DELETE FROM {schema}.{table} WHERE as_of = $as_of
