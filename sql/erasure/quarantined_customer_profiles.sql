-- The same for quarantined customer rows (their raw text is in raw_values): a profile that failed
-- its contract still names the person's emails and handles.
WITH profiles AS (
    SELECT
        erasure_normalized(json_extract_string(raw_values, '$.customer_id'), 'customer_id')
            AS customer_id,
        erasure_normalized(json_extract_string(raw_values, '$.email'), 'email') AS email,
        json_extract_string(raw_values, '$.social_handles') AS social_handles
    FROM staging.quarantine
    WHERE source = 'customers'
)
SELECT DISTINCT
    customer_id,
    email,
    list_filter(
        list_transform(string_split(social_handles, ';'), lambda h: erasure_normalized(h, 'handle')),
        lambda h: h IS NOT NULL
    ) AS handles
FROM profiles
WHERE list_contains($ids::VARCHAR[], customer_id)
   OR list_contains($emails::VARCHAR[], email)
   OR list_has_any(
       $handles::VARCHAR[],
       list_transform(string_split(social_handles, ';'), lambda h: erasure_normalized(h, 'handle'))
   )
