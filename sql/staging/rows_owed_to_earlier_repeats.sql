-- The rows this ingest's files ($files) staged for a key that one of its changed files freed
-- (staged before, replaced_keys, and no longer staged from that file: a changed file that still
-- holds a key keeps it) while a quarantined repeat of the key waits in a file taken in earlier
-- (file_ranks: when each file was first taken in, a frame the caller registers; ties by path).
-- The key is that repeat's: the caller moves these rows to the repeats (duplicate_rows) and
-- restage_orphaned_duplicates stages the earliest repeat, as a key freed by a changed file goes
-- everywhere else, and as the Spark engine ranks every key
-- (ingestion._give_freed_keys_to_earlier_repeats). The repeats waiting are found first: after an
-- upgrade of the rules every file is in $files and none waits, so the staged rows and the
-- replaced keys are only looked up by the few keys that do.
-- quarantined_key: the caller's temporary macro (create_quarantined_key_macro.sql); $key_paths:
-- the JSON paths of the key columns in raw_values. {table} and {key} (the key as one text,
-- ingestion._key_sql) come from the contracts' allow-list.
WITH waiting AS (
    SELECT quarantined_key(raw_values, $key_paths) AS key_text, source_file
    FROM staging.quarantine
    WHERE source = $source
        AND reason = 'duplicate_key'
        AND NOT list_contains($files, source_file)
),

held_before AS (
    SELECT DISTINCT key, source_file
    FROM replaced_keys
    WHERE key IN (SELECT key_text FROM waiting)
),

staged_again AS (
    SELECT {key} AS key_text, source_file, source_row
    FROM staging.{table}
    WHERE list_contains($files, source_file) AND {key} IN (SELECT key FROM held_before)
),

freed AS (
    SELECT DISTINCT h.key
    FROM held_before AS h
    ANTI JOIN staged_again AS a ON a.key_text = h.key AND a.source_file = h.source_file
)

SELECT DISTINCT a.source_file, a.source_row, a.key_text
FROM staged_again AS a
INNER JOIN file_ranks AS ra ON ra.source_file = a.source_file
INNER JOIN waiting AS w ON w.key_text = a.key_text
INNER JOIN file_ranks AS rw ON rw.source_file = w.source_file
WHERE a.key_text IN (SELECT key FROM freed)
    AND (
        rw.first_taken_in < ra.first_taken_in
        OR (rw.first_taken_in = ra.first_taken_in AND w.source_file < a.source_file)
    )
