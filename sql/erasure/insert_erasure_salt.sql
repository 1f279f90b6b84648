INSERT INTO staging.erasure_salt (salt, created_at) VALUES ($salt, $created_at)
