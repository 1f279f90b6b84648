-- Quarantined duplicates of a source, in files other than $files, whose key is staged now from
-- one of $files: files that changed and were read again. Their detail compared them with the row
-- those files staged before, so they are compared again with the row staged now
-- (`ingestion.compare_repeats`, after the commit). $key_paths: the JSON paths of the key
-- columns in raw_values ('$.order_id'); a key is its columns' text joined by chr(31), as in
-- orphaned_duplicates.sql (the caller's temporary macro quarantined_key reads it). {table} and
-- {key} come from the contracts' allow-list.
WITH replaced AS (
    SELECT DISTINCT concat_ws(chr(31), {key}) AS key_text
    FROM staging.{table}
    WHERE list_contains($files, source_file)
)
SELECT q.source_file, q.source_row
FROM staging.quarantine AS q
WHERE q.source = $source
    AND q.reason = 'duplicate_key'
    AND NOT list_contains($files, q.source_file)
    AND quarantined_key(q.raw_values, $key_paths) IN (SELECT key_text FROM replaced)
