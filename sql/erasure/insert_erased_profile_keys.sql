-- The registered rows erased_profile_rows (profile_hash, kind, key_hash) into
-- staging.erased_profile_keys, each profile and key once however often it is erased or read.
INSERT OR IGNORE INTO staging.erased_profile_keys (profile_hash, kind, key_hash)
SELECT profile_hash, kind, key_hash FROM erased_profile_rows
