-- The same for quarantined customer rows (their raw text is in raw_values): a profile that failed
-- its contract still names the person's emails and handles.
WITH raw AS (
    SELECT
        json_extract_string(raw_values, '$.customer_id') AS customer_id,
        json_extract_string(raw_values, '$.email') AS email,
        json_extract_string(raw_values, '$.social_handles') AS social_handles
    FROM staging.quarantine
    WHERE source = 'customers'
)
SELECT DISTINCT
    erasure_normalized(customer_id, 'customer_id') AS customer_id,
    erasure_normalized(email, 'email') AS email,
    list_filter(
        list_transform(string_split(social_handles, ';'), lambda h: erasure_normalized(h, 'handle')),
        lambda h: h IS NOT NULL
    ) AS handles
FROM raw
WHERE erasure_holds(customer_id, $ids::VARCHAR[], 'customer_id')
   OR erasure_holds(email, $emails::VARCHAR[], 'email')
   OR erasure_may_hold(social_handles, $handles::VARCHAR[]) AND list_has_any(
       $handles::VARCHAR[],
       list_transform(string_split(social_handles, ';'), lambda h: erasure_normalized(h, 'handle'))
   )
