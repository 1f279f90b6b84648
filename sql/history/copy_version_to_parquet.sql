-- One version of {mart} written to its Parquet file (a temporary name the caller renames), with
-- the warehouse and the version it is of in the file's key-value metadata: a file another
-- warehouse wrote at the same name (a working database restored over a warehouse started anew)
-- is told apart and written again (engagement_box/governance/readers.py::_foreign).
-- Parameters: $snapshot_id (BIGINT), $path (the file), $warehouse_id (VARCHAR), $snapshot (VARCHAR).
-- (The braces of the struct are doubled: the file is a template filled with the mart.)
COPY (
    SELECT * FROM history.{mart} WHERE snapshot_id = $snapshot_id
) TO $path (
    FORMAT parquet,
    KV_METADATA {{engagement_box_warehouse: $warehouse_id, engagement_box_snapshot: $snapshot}}
)
