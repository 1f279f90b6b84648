-- The staged customer profiles that carry the keys of a quarantined customer row (normalised):
-- (kind, key, owner) for its customer id ($id), its email ($email) and its handles ($handles).
-- `erasure._keys_to_follow` decides from them which of the row's keys lead to the person: the
-- identity merge never links through a quarantined row (a profile change not applied, a profile
-- that failed its contract), so a key that someone else's staged profile carries does not.
WITH staged AS (
    SELECT
        erasure_normalized(customer_id, 'customer_id') AS owner,
        erasure_normalized(email, 'email') AS email,
        list_transform(
            string_split(social_handles, ';'), lambda h: erasure_normalized(h, 'handle')
        ) AS handles
    FROM staging.customers
)
SELECT 'customer_id' AS kind, owner AS key, owner FROM staged WHERE owner = $id
UNION ALL
SELECT 'email' AS kind, email AS key, owner FROM staged WHERE email = $email
UNION ALL
SELECT 'handle' AS kind, handle AS key, owner
FROM (SELECT unnest(handles) AS handle, owner FROM staged)
WHERE list_contains($handles::VARCHAR[], handle)
