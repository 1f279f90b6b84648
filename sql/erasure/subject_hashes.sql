-- Every subject hash in the erasure log.
SELECT DISTINCT unnest(subject_hashes) FROM staging.erasure_log
