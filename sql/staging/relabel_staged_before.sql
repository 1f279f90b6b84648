-- Rows held back inside their batch (a key repeated in one batch) whose key was staged by an
-- earlier ingest: say so, as for the rows held back against seen_keys. {key} comes from the
-- contracts' allow-list.
UPDATE duplicate_rows
SET detail = 'already staged from an earlier file'
WHERE {key} IN (SELECT key_value FROM seen_keys WHERE staged_before)
