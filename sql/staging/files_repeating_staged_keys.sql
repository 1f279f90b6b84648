-- Pairs of a source's files: `stager` stages a key now, `repeater` holds a row quarantined as its
-- repeat (duplicate_key), so `stager` ranked first when they were taken in. What ranks files
-- recorded before staging.ingested_files.first_taken_in (ingestion._rank_files_taken_in_before).
-- $source, $key_paths (the JSON paths of the key columns in raw_values); the caller fills in
-- {table} (quoted) and {key} (the staged key as one text, ingestion._key_sql) from the contracts.
WITH repeats AS (
    SELECT DISTINCT
        source_file AS repeater,
        quarantined_key(raw_values, $key_paths) AS key_text
    FROM staging.quarantine
    WHERE source = $source AND reason = 'duplicate_key'
)
SELECT DISTINCT staged.source_file AS stager, repeats.repeater
FROM staging.{table} AS staged
JOIN repeats ON {key} = repeats.key_text
WHERE staged.source_file <> repeats.repeater
