-- Per changed file whose keys staged before (replaced_keys) no file stages now: how many keys it
-- no longer holds and the first of them (in the file's old row order), how many it still holds
-- in a row quarantined now (and the first of those), and how many in a row of a person erased on
-- request (erased_keys_read, registered by the caller: the keys of the erased rows read). Placeholders, built by the caller:
-- the staged key as one text (ingestion._key_sql), the quoted staged table, the key of a
-- quarantined row as the staged key reads it (its columns' raw values, bound as $k0, $k1...),
-- and ($shown, bound) how many keys to show.
WITH gone AS (
    SELECT r.* FROM replaced_keys AS r
    ANTI JOIN (SELECT {key} AS key FROM staging.{table}) AS s ON s.key = r.key
),
bad AS (
    SELECT DISTINCT q.source_file, {raw_key} AS key
    FROM staging.quarantine AS q
    WHERE q.source = $source AND q.source_file IN (SELECT source_file FROM gone)
),
erased AS (SELECT DISTINCT source_file, key FROM erased_keys_read)
SELECT
    g.source_file,
    count(*) FILTER (WHERE b.key IS NULL AND e.key IS NULL),
    (list(g.key ORDER BY g.source_row) FILTER (WHERE b.key IS NULL AND e.key IS NULL))[1:$shown],
    count(*) FILTER (WHERE b.key IS NOT NULL AND e.key IS NULL),
    (list(g.key ORDER BY g.source_row) FILTER (WHERE b.key IS NOT NULL AND e.key IS NULL))[1:$shown],
    count(*) FILTER (WHERE e.key IS NOT NULL)
FROM gone AS g
LEFT JOIN bad AS b ON b.source_file = g.source_file AND b.key = g.key
LEFT JOIN erased AS e ON e.source_file = g.source_file AND e.key = g.key
GROUP BY g.source_file
ORDER BY g.source_file
