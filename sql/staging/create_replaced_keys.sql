-- The keys the changed files ($files) stage now, before they are replaced, with the file and
-- row of each (ingestion._withdrawn_keys compares them with the keys staged afterwards).
-- Placeholders: the key as one text (ingestion._key_sql) and the quoted staged table.
CREATE OR REPLACE TEMP TABLE replaced_keys AS
SELECT source_file, {key} AS key, source_row
FROM staging.{table} WHERE list_contains($files, source_file)
