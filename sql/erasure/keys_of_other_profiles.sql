-- Of the keys a quarantined customer row names ($id, $email, $handles, normalised), those a
-- staged profile of someone else carries (a customer id not among $ids, the person's so far).
-- The identity merge never links through a quarantined row (a profile change not applied, a
-- profile that failed its contract), so the erasure does not follow such a key either: a
-- quarantined row of the person that named another customer's email erased that customer.
SELECT
    coalesce(bool_or(erasure_normalized(customer_id, 'customer_id') = $id), false) AS id_taken,
    coalesce(bool_or(erasure_normalized(email, 'email') = $email), false) AS email_taken,
    coalesce(
        list_distinct(flatten(list(list_filter(
            list_transform(
                string_split(social_handles, ';'), lambda h: erasure_normalized(h, 'handle')
            ),
            lambda h: list_contains($handles::VARCHAR[], h)
        )))),
        []
    ) AS handles_taken
FROM staging.customers
WHERE NOT list_contains($ids::VARCHAR[], erasure_normalized(customer_id, 'customer_id'))
