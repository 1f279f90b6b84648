-- A source's quarantined rows per reason, the most frequent first.
SELECT reason, count(*) AS rows FROM staging.quarantine WHERE source = $source
GROUP BY reason ORDER BY rows DESC, reason
