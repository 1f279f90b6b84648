SELECT DISTINCT unnest(subject_hashes) AS subject_hash FROM staging.erasure_log
