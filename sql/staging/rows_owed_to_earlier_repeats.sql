-- The rows this ingest's files ($files) staged for a key that one of its changed files freed
-- (replaced_keys: the keys those files staged before the ingest) while a quarantined repeat of
-- the key waits in a file taken in earlier (file_ranks: when each file was first taken in, a
-- frame the caller registers; ties by path). The key is that repeat's: the caller moves these
-- rows to the repeats (duplicate_rows) and restage_orphaned_duplicates stages the earliest
-- repeat, as a key freed by a changed file goes everywhere else, and as the Spark engine ranks
-- every key (ingestion._give_freed_keys_to_earlier_repeats).
-- quarantined_key: the caller's temporary macro (create_quarantined_key_macro.sql); $key_paths:
-- the JSON paths of the key columns in raw_values. {table} and {key} (the key as one text,
-- ingestion._key_sql) come from the contracts' allow-list.
WITH freed AS (
    SELECT DISTINCT key FROM replaced_keys
),

staged_again AS (
    SELECT {key} AS key_text, source_file, source_row
    FROM staging.{table}
    WHERE list_contains($files, source_file) AND {key} IN (SELECT key FROM freed)
),

waiting AS (
    SELECT quarantined_key(raw_values, $key_paths) AS key_text, source_file
    FROM staging.quarantine
    WHERE source = $source
        AND reason = 'duplicate_key'
        AND NOT list_contains($files, source_file)
        AND quarantined_key(raw_values, $key_paths) IN (SELECT key FROM freed)
)

SELECT DISTINCT a.source_file, a.source_row
FROM staged_again AS a
INNER JOIN file_ranks AS ra ON ra.source_file = a.source_file
INNER JOIN waiting AS w ON w.key_text = a.key_text
INNER JOIN file_ranks AS rw ON rw.source_file = w.source_file
WHERE rw.first_taken_in < ra.first_taken_in
    OR (rw.first_taken_in = ra.first_taken_in AND w.source_file < a.source_file)
