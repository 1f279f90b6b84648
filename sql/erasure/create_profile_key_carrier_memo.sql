-- The last answer of sql/erasure/profile_key_carriers.sql, and what it was computed from: the
-- staged profiles' state ($token of sql/staging/customers_state_token.sql), $least and the
-- salt's fingerprint. One marker row (key_type NULL) says it was computed, so an empty answer
-- is kept too. Every source's staging of a run asks it while an erased profile's key is not
-- logged (a placeholder's, or a profile erased by its id before it was staged): 4.2-5.0 s each
-- over 1M staged profiles (a code review), while the profiles change only with the customers
-- files and the erasures. Working database only; never published.
CREATE TABLE IF NOT EXISTS staging.profile_key_carrier_memo (
    token            VARCHAR NOT NULL,
    least            INTEGER NOT NULL,
    salt_fingerprint VARCHAR NOT NULL,
    key_type         VARCHAR,
    key_hash         VARCHAR,
    profiles         BIGINT
)
