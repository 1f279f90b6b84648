-- The emails and handles erased customer profiles carried, one row per profile and key, by hash:
-- sha256(salt || '<kind>:<normalised value>'), hex, as staging.erasure_log keeps subjects (the
-- profile's hash is its customer id's); never a value. Identity counts them among a key's
-- profiles (sql/intermediate/erased_placeholder_keys.sql): erasing one of six profiles on a
-- till's address must not leave five strangers under ENGAGEMENT_MAX_PROFILES_PER_KEY, who would
-- then merge into one person. Written by the erasure, and by the ingest for each erased profile
-- it reads again (engagement_box/governance/erasure.py::record_erased_profiles).
CREATE TABLE IF NOT EXISTS staging.erased_profile_keys (
    profile_hash VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,
    key_hash     VARCHAR NOT NULL,
    PRIMARY KEY (profile_hash, kind, key_hash)
)
