-- One version of {mart} written to its Parquet file (a temporary name the caller renames).
-- Parameters: $snapshot_id (BIGINT), $path (the file).
COPY (
    SELECT * FROM history.{mart} WHERE snapshot_id = $snapshot_id
) TO $path (FORMAT parquet)
