-- Quarantined duplicates of a source (rest_rows: source_file, source_row, a frame registered by
-- the caller) whose key is staged from another row now (a restage): their detail compared them
-- with the row gone, so it goes back to "not compared yet" ($pending), for the comparison with
-- the row staged now after the commit (`ingestion.compare_repeats`).
UPDATE staging.quarantine AS q
SET detail = regexp_replace(q.detail, ', (the same values|other values in .*)$', '') || $pending
FROM rest_rows AS r
WHERE q.source = $source
    AND q.reason = 'duplicate_key'
    AND q.source_file = r.source_file
    AND q.source_row = r.source_row
    AND NOT suffix(q.detail, $pending)
