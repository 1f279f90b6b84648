-- The repeats this ingest held back (duplicate_rows) of a key an earlier file's repeat is now
-- owed (rows_owed.key_text, rows_owed_to_earlier_repeats.sql): the key is staged from an earlier
-- file, not from a row of this ingest. {key}: the key as one text (ingestion._key_sql).
UPDATE duplicate_rows
SET detail = 'already staged from an earlier file'
WHERE {key} IN (SELECT key_text FROM rows_owed)
