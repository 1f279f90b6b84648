-- The detail of quarantined duplicates of a source (new_details: source_file, source_row,
-- detail, a frame registered by the caller): those whose key was staged again from another
-- duplicate (`_restage_orphaned_duplicates`) say whether they repeat that row or differ.
UPDATE staging.quarantine AS q
SET detail = n.detail
FROM new_details AS n
WHERE q.source = $source
    AND q.reason = 'duplicate_key'
    AND q.source_file = n.source_file
    AND q.source_row = n.source_row
