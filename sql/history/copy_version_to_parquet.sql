-- One version of {mart} written to its Parquet file (a temporary name the caller renames), with
-- the warehouse, the version it is of and when that version was published in the file's
-- key-value metadata: a file another warehouse wrote at the same name (a working database
-- restored over a warehouse started anew), or the same warehouse for a version of the same
-- number published on another timeline (a backup restored), is told apart and written again
-- (engagement_box/governance/readers.py::_foreign).
-- Parameters: $snapshot_id (BIGINT), $path (the file), $warehouse_id (VARCHAR), $snapshot
-- (VARCHAR), $published_at (VARCHAR).
-- (The braces of the struct are doubled: the file is a template filled with the mart.)
COPY (
    SELECT * FROM history.{mart} WHERE snapshot_id = $snapshot_id
) TO $path (
    FORMAT parquet,
    KV_METADATA {{
        engagement_box_warehouse: $warehouse_id,
        engagement_box_snapshot: $snapshot,
        engagement_box_published_at: $published_at
    }}
)
