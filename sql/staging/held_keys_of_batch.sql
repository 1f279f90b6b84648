-- Keys of the batch in good_rows that are staged already: by an earlier ingest
-- (staged_before) or by an earlier batch of this one. {key} comes from the contracts'
-- allow-list.
CREATE OR REPLACE TEMP TABLE held_keys AS
SELECT key_value, staged_before
FROM seen_keys
WHERE key_value IN (SELECT {key} FROM good_rows)
