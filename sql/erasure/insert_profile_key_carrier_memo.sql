-- An answer of sql/erasure/profile_key_carriers.sql (the registered frame carrier_rows: its
-- rows, and the marker row with key_type NULL) kept for $token, $least and $fingerprint.
INSERT INTO staging.profile_key_carrier_memo
SELECT $token, $least, $fingerprint, key_type, key_hash, profiles
FROM carrier_rows
