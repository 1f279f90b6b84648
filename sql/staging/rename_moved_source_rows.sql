-- The same for a bookkeeping table of all sources ({table}: quarantine, erased_rows or
-- ingested_files), limited to the source's rows.
UPDATE staging.{table} AS t SET source_file = m.{new} FROM file_moves AS m
WHERE t.source = $source AND t.source_file = m.{old}
