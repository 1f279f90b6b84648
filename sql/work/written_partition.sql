-- The registry's record of one as-of of a table. Filled by the caller (a template): {columns}
-- is `computation, failed_checks`, NULL for either the registry lacks; {registry} the quoted
-- schema.written_partitions.
-- Parameters: $table (VARCHAR), $as_of (DATE).
SELECT {columns} FROM {registry}
WHERE table_name = $table AND as_of = $as_of
