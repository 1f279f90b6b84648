-- The answer of sql/staging/later_profile_consents.sql kept by the writer that changed what it
-- reads (the customers' ingest, an erasure), for $token of sql/staging/customers_state_token.sql;
-- a marker row (customer_id NULL) says it was computed, so an empty answer is kept too. Each
-- step's inputs fingerprint asks it (about nine times a run): 4.3-5.9 s each over 3M repeated
-- profile rows (a code review). Readers take it only while the token is theirs, else compute it.
-- Working database only; never published.
CREATE TABLE IF NOT EXISTS staging.later_consents_memo (
    token             VARCHAR NOT NULL,
    customer_id       VARCHAR,
    marketing_consent BOOLEAN,
    source_file       VARCHAR,
    source_row        BIGINT
)
