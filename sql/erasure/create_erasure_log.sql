-- One row per erasure request, without personal data: the subjects are salted SHA-256 hashes
-- (see pipelines/erasure.py), rows_deleted counts rows per table, salt_fingerprint says which salt
-- made the hashes (a hash of the salt, not the salt).
CREATE TABLE IF NOT EXISTS staging.erasure_log (
    request_id       VARCHAR   NOT NULL PRIMARY KEY,
    subject_hashes   VARCHAR[] NOT NULL,
    requested_at     TIMESTAMP NOT NULL,
    rows_deleted     JSON      NOT NULL,
    salt_fingerprint VARCHAR   NOT NULL
)
