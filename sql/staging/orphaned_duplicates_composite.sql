-- Rows quarantined as duplicate_key whose key is no longer staged anywhere: the first occurrence
-- was in a file that changed since and no longer holds the key. The ingest stages the first of
-- them again (by when its file was first taken in, then path, then row: the caller orders
-- them, ingestion.restage_orphaned_duplicates), so a key is never in neither place.
-- quarantined_key: the caller's temporary macro (create_quarantined_key_macro.sql).
-- $key_paths: the JSON paths of the key columns in raw_values ('$.order_id'); a key is its
-- columns' text joined by chr(31). This is the form for a key of several columns (fx_rates);
-- orphaned_duplicates.sql, for one key column, compares the column itself (faster).
-- {table} and {key} come from the contracts' allow-list.
WITH duplicates AS (
    SELECT
        source_file,
        source_row,
        raw_values,
        quarantined_key(raw_values, $key_paths) AS key_text
    FROM staging.quarantine
    WHERE source = $source AND reason = 'duplicate_key'
),
still_staged AS (
    SELECT DISTINCT concat_ws(chr(31), {key}) AS key_text
    FROM staging.{table}
    WHERE concat_ws(chr(31), {key}) IN (SELECT key_text FROM duplicates)
)
SELECT source_file, source_row, raw_values
FROM duplicates
WHERE key_text NOT IN (SELECT key_text FROM still_staged)
ORDER BY source_file, source_row
