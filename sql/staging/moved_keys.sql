-- Per changed file: the keys it staged before (replaced_keys) that it no longer holds and a file
-- taken in by this run ($files, new or changed) now stages, with that row's values: how many,
-- the first of them (in the file's old row order) and the files that stage them now. Keys staged
-- again from an unchanged file's repeated row are said apart (restage_orphaned_duplicates).
-- Placeholders, built by the caller: the staged key as one text (ingestion._key_sql), the quoted
-- staged table; bound: $files, and $shown, how many keys to show.
WITH moved AS (
    SELECT r.source_file, r.key, r.source_row, s.source_file AS now_from
    FROM replaced_keys AS r
    INNER JOIN (
        SELECT {key} AS key, source_file FROM staging.{table}
        WHERE list_contains($files, source_file)
    ) AS s ON s.key = r.key AND s.source_file <> r.source_file
)
SELECT
    source_file,
    count(*),
    (list(key ORDER BY source_row))[1:$shown],
    list(DISTINCT now_from ORDER BY now_from)
FROM moved
GROUP BY source_file
ORDER BY source_file
