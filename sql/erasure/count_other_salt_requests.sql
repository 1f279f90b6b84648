-- Erasure requests logged with another salt than the one of $fingerprint: their hashes could
-- never match with this salt.
SELECT count(*) FROM staging.erasure_log WHERE salt_fingerprint <> $fingerprint
