SELECT reason, count(*) AS rows
FROM staging.quarantine
WHERE source = $source
GROUP BY reason
ORDER BY rows DESC, reason
