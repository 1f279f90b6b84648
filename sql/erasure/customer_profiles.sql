-- The staged customer profiles with one of the given customer ids, normalised emails or handles,
-- as normalised keys: (customer_id, email, handles). Used to close the set of a person's keys
-- over the same links the identity merge follows (sql/intermediate/customer_merge.sql).
SELECT DISTINCT
    erasure_normalized(customer_id, 'customer_id') AS customer_id,
    erasure_normalized(email, 'email') AS email,
    list_filter(
        list_transform(string_split(social_handles, ';'), lambda h: erasure_normalized(h, 'handle')),
        lambda h: h IS NOT NULL
    ) AS handles
FROM staging.customers
WHERE erasure_holds(customer_id, $ids::VARCHAR[], 'customer_id')
   OR erasure_holds(email, $emails::VARCHAR[], 'email')
   OR erasure_may_hold(social_handles, $handles::VARCHAR[]) AND list_has_any(
       $handles::VARCHAR[],
       list_transform(string_split(social_handles, ';'), lambda h: erasure_normalized(h, 'handle'))
   )
