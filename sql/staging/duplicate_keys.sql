-- Rows of this batch whose key is already staged from another file, or appeared earlier in the
-- batch (files in path order, rows in file order): the first occurrence wins, later ones are
-- quarantined. {key} and {table} come from the contracts' allow-list.
WITH batch AS (
    SELECT
        {key} AS key_value,
        source_file,
        source_row,
        row_number() OVER (PARTITION BY {key} ORDER BY source_file, source_row) AS occurrence
    FROM batch_rows
),
already_staged AS (
    SELECT DISTINCT {key} AS key_value FROM staging.{table}
)
SELECT b.source_file, b.source_row, b.key_value,
       CASE WHEN s.key_value IS NOT NULL THEN 'already staged from an earlier file'
            ELSE 'repeated within this ingest' END AS detail
FROM batch AS b
LEFT JOIN already_staged AS s ON s.key_value = b.key_value
WHERE b.occurrence > 1 OR s.key_value IS NOT NULL
