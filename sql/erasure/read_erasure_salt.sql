SELECT salt FROM staging.erasure_salt ORDER BY created_at, salt LIMIT 1
