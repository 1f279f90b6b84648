-- Keys staged more than once now that the rows of $files (this ingest) are in: only keys of
-- these files can be repeated (earlier ingests were held to one row per key), so the table is
-- probed with them instead of grouped whole. {table} and {key} come from the contracts'
-- allow-list.
CREATE OR REPLACE TEMP TABLE repeated_keys AS
SELECT t.{key} AS key_value
FROM staging.{table} AS t
WHERE t.{key} IN (
    SELECT {key} FROM staging.{table} WHERE list_contains($files, source_file)
)
GROUP BY t.{key}
HAVING count(*) > 1
