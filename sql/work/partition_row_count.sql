-- Parameters: $as_of (DATE).
SELECT count(*) FROM {schema}.{table} WHERE as_of = $as_of
