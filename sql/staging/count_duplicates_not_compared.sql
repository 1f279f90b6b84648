-- Duplicates of a source ($source NULL: of any) whose detail still ends with $pending: an ingest
-- committed and its run stopped before it compared them.
SELECT count(*) FROM staging.quarantine WHERE reason = 'duplicate_key'
AND ($source IS NULL OR source = $source) AND suffix(detail, $pending)
