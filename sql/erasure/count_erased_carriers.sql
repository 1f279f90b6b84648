-- How many profiles erased before carried a key (its kind and salted hash).
SELECT count(DISTINCT profile_hash) FROM staging.erased_profile_keys
WHERE kind = $kind AND key_hash = $hash
