-- Retained versions with rows of a mart, by the counts their log rows recorded at publish (no
-- scan of the history table). Parameters: $key (the JSON path of the mart: '$.<mart>').
SELECT
    snapshot_id,
    CAST(json_extract_string("tables", $key) AS BIGINT) AS n
FROM marts.snapshot_log
WHERE expired_at IS NULL AND n > 0
