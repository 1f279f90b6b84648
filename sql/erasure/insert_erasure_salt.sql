-- Keep a salt as the warehouse's own (created at its first use).
INSERT INTO staging.erasure_salt (salt, created_at) VALUES ($salt, $created_at)
