-- The first $n rows of one as-of (with the as_of column), without reading the others.
-- Parameters: $as_of (DATE), $n (rows).
SELECT * FROM {schema}.{table} WHERE as_of = $as_of LIMIT $n
