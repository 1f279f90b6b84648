-- Record that one as-of of a table was written (its rows possibly none), in the same
-- transaction as the rows. {registry} is written_partitions (versions.REGISTRY).
-- Parameters: $table (VARCHAR), $as_of (DATE), $computation (the inputs' fingerprint or NULL),
-- $failed (the blocking checks failed, comma-separated, or NULL).
INSERT OR REPLACE INTO {schema}.{registry}
(table_name, as_of, written_at, computation, failed_checks)
VALUES ($table, $as_of, current_localtimestamp(), $computation, $failed)
