-- Rows read = rows staged + rows quarantined, per source, from the tables themselves.
-- {table} comes from the contracts' allow-list.
WITH files AS (
    SELECT coalesce(sum(rows_read), 0) AS rows_read, count(*) AS files
    FROM staging.ingested_files WHERE source = $source
),
staged AS (SELECT count(*) AS rows_staged FROM staging.{table}),
quarantined AS (
    SELECT count(*) AS rows_quarantined FROM staging.quarantine WHERE source = $source
)
SELECT files.files, files.rows_read, staged.rows_staged, quarantined.rows_quarantined
FROM files, staged, quarantined
