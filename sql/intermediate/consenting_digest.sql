-- What the audience files' consent is checked by (`_written_from.json`'s "consent"): how many
-- merged persons consent to marketing now, and a digest of their ids (order-free). Reads the
-- view create_consent_of_now.sql makes (a withdrawal staged counts before the identity step).
SELECT
    count(*) AS consenting,
    coalesce(bit_xor(md5_number(customer_id)), 0)::VARCHAR AS digest
FROM consent_of_now
WHERE marketing_consent
