-- The warehouse's own salt: the first one stored.
SELECT salt FROM staging.erasure_salt ORDER BY created_at, salt LIMIT 1
