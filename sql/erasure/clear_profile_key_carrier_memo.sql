-- The memo holds one answer: the last one (sql/erasure/create_profile_key_carrier_memo.sql).
DELETE FROM staging.profile_key_carrier_memo
