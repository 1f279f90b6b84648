-- What the audience files' consent is checked by (`_written_from.json`'s "consent"): how many
-- merged persons consent to marketing now, and a digest of their ids (order-free).
SELECT
    count(*) AS consenting,
    coalesce(bit_xor(md5_number(customer_id)), 0)::VARCHAR AS digest
FROM intermediate.resolved_customers
WHERE coalesce(marketing_consent, false)
