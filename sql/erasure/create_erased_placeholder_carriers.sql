-- The placeholder emails and handles an erasure did not follow (sql/erasure/placeholder_keys.sql)
-- and how many of the erased person's staged profiles carried each. Identity still counts those
-- profiles (sql/intermediate/erased_placeholder_keys.sql): erasing carriers never brings a
-- placeholder under ENGAGEMENT_MAX_PROFILES_PER_KEY, which would merge the strangers left on it.
-- The key is kept as staging.erasure_log keeps subjects: sha256(salt || '<kind>:<normalised
-- value>'), hex; never the value.
CREATE TABLE IF NOT EXISTS staging.erased_placeholder_carriers (
    request_id VARCHAR NOT NULL,
    kind       VARCHAR NOT NULL,
    key_hash   VARCHAR NOT NULL,
    carriers   BIGINT  NOT NULL,
    PRIMARY KEY (request_id, kind, key_hash)
)
