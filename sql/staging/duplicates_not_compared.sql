-- A source's duplicates whose detail still ends with $pending, with their raw values as text.
SELECT source_file, source_row, run_id, detail, CAST(raw_values AS VARCHAR) AS raw
FROM staging.quarantine WHERE source = $source AND reason = 'duplicate_key'
AND suffix(detail, $pending) ORDER BY source_file, source_row
