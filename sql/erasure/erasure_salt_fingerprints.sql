SELECT DISTINCT salt_fingerprint FROM staging.erasure_log ORDER BY 1
