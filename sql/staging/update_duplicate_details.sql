-- The detail of quarantined duplicates of a source (new_details: source_file, source_row,
-- detail, a frame registered by the caller): compared with the row staged for their key
-- (`ingestion.compare_repeats`), they say whether they repeat it or differ.
UPDATE staging.quarantine AS q
SET detail = n.detail
FROM new_details AS n
WHERE q.source = $source
    AND q.reason = 'duplicate_key'
    AND q.source_file = n.source_file
    AND q.source_row = n.source_row
