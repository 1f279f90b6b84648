-- Rows read = rows staged + rows quarantined + rows erased, per source, from the tables.
-- Erased rows are those of people erased on request (engagement_box/governance/erasure.py).
-- Run by engagement_box/staging/reconciliation.py::reconcile, the one place it is read;
-- {table} comes from the contracts' allow-list.
WITH files AS (
    SELECT coalesce(sum(rows_read), 0) AS rows_read, count(*) AS files
    FROM staging.ingested_files WHERE source = $source
),
staged AS (SELECT count(*) AS rows_staged FROM staging.{table}),
quarantined AS (
    SELECT count(*) AS rows_quarantined FROM staging.quarantine WHERE source = $source
),
erased AS (
    SELECT coalesce(sum(rows), 0) AS rows_erased FROM staging.erased_rows WHERE source = $source
)
SELECT files.files, files.rows_read, staged.rows_staged, quarantined.rows_quarantined,
       erased.rows_erased
FROM files, staged, quarantined, erased
