-- The person's identity links: resolved to one of their customer ids, or keyed by one of their
-- ids, emails or handles (unresolved rows too, e.g. a guest order's email).
DELETE FROM intermediate.identity_links
WHERE list_contains($ids::VARCHAR[], customer_id)
   OR (key_type = 'customer_id' AND list_contains($ids::VARCHAR[], normalized_value))
   OR (key_type = 'email' AND list_contains($emails::VARCHAR[], normalized_value))
   OR (key_type = 'handle' AND list_contains($handles::VARCHAR[], normalized_value))
