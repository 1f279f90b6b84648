-- quarantined_key(raw_values, key_paths): the key of a quarantined row as one text, from its raw
-- values (JSON) at the key columns' paths ('$.order_id'), joined by chr(31) as
-- ingestion.key_text joins a staged row's key. For the queries that match repeats with staged
-- keys: orphaned_duplicates*.sql and files_repeating_staged_keys.sql.
CREATE OR REPLACE TEMP MACRO quarantined_key(raw_values, key_paths) AS array_to_string(
    list_transform(CAST(key_paths AS VARCHAR[]), p -> json_extract_string(raw_values, p)),
    chr(31)
)
