-- The rows of a work table keyed by as-of that belong to one as-of. {table}: a work table's name.
SELECT count(*) FROM work.{table} WHERE as_of = $as_of
