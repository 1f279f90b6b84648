-- The kept answer for $token (sql/staging/create_later_consents_memo.sql): its marker row, then
-- (customer_id, marketing_consent, source_file, source_row) by customer id.
SELECT customer_id, marketing_consent, source_file, source_row
FROM staging.later_consents_memo
WHERE token = $token
ORDER BY customer_id NULLS FIRST
