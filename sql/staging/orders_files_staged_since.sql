-- Orders files that staged rows after $published (UTC, as ingested_at): orders the current
-- version does not hold (versions.freshness).
SELECT count(*) FROM staging.ingested_files
WHERE source = 'orders' AND rows_staged > 0 AND ingested_at > $published
