-- Every staged row of a repeated key (temp table repeated_keys) but its first occurrence goes to
-- duplicate_rows: rows staged by earlier ingests (files not in $files) come first, then this
-- ingest's rows by file path and row number. delete_held_back_rows.sql then unstages them.
-- {table}, {key} and {columns} come from the contracts' allow-list.
INSERT INTO duplicate_rows
SELECT
    CASE
        WHEN staged_before THEN 'already staged from an earlier file'
        ELSE 'repeated within this ingest'
    END AS detail,
    {columns}
FROM (
    SELECT
        t.*,
        row_number() OVER (
            PARTITION BY t.{key}
            ORDER BY list_contains($files, t.source_file), t.source_file, t.source_row
        ) AS occurrence,
        bool_or(NOT list_contains($files, t.source_file)) OVER (PARTITION BY t.{key})
            AS staged_before
    FROM staging.{table} AS t
    WHERE t.{key} IN (SELECT key_value FROM repeated_keys)
)
WHERE occurrence > 1
