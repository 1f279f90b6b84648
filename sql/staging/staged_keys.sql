-- Keys of this batch that are already staged, and whether from a file other than those being
-- (re)ingested now (`staged_before`). {table} and {key} come from the contracts' allow-list.
SELECT b.key_value, bool_or(NOT list_contains($files, t.source_file)) AS staged_before
FROM staging.{table} AS t
JOIN batch_keys AS b ON t.{key} = b.key_value
GROUP BY b.key_value
