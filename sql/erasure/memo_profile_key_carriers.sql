-- The memo's answer for $token, $least and $fingerprint (sql/erasure/
-- create_profile_key_carrier_memo.sql): its marker row, then (key_type, key_hash, profiles).
SELECT key_type, key_hash, profiles
FROM staging.profile_key_carrier_memo
WHERE token = $token AND least = $least AND salt_fingerprint = $fingerprint
