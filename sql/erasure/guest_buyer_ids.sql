-- The buyer ids on {table}'s rows (orders or reviews: the allow-list) that carry one of the
-- person's emails or ids and that no staged customer profile has (erasure_profile_ids): a guest
-- checkout, an orders-only export. Identity makes such an id a customer of its own
-- (sql/intermediate/orders_resolution.sql), so the person's rows without an email are under it.
-- One row per id and email its rows carry (NULL for rows without one): the caller follows an id
-- only when every email under it is the person's (`erasure._follow_guest_ids`).
WITH guests AS (
    SELECT DISTINCT erasure_normalized(customer_id, 'customer_id') AS customer_id
    FROM staging.{table}
    WHERE (
        erasure_holds(email, $emails::VARCHAR[], 'email')
        OR erasure_holds(customer_id, $ids::VARCHAR[], 'customer_id')
    )
    AND erasure_normalized(customer_id, 'customer_id') IS NOT NULL
    AND erasure_normalized(customer_id, 'customer_id') NOT IN (
        SELECT customer_id FROM erasure_profile_ids WHERE customer_id IS NOT NULL
    )
)
SELECT DISTINCT
    erasure_normalized(t.customer_id, 'customer_id') AS customer_id,
    erasure_normalized(t.email, 'email') AS email
FROM staging.{table} AS t
WHERE erasure_holds(
    t.customer_id, (SELECT coalesce(list(customer_id), []::VARCHAR[]) FROM guests), 'customer_id'
)
