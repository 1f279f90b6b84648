-- Every key erased profiles carried (staging.erased_profile_keys): what the register gives the
-- Spark engine's identity.
SELECT profile_hash, kind, key_hash
FROM staging.erased_profile_keys
ORDER BY profile_hash, kind, key_hash
