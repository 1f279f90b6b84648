-- The answer of sql/staging/later_profile_consents.sql (the registered frame consent_rows, its
-- marker row included) kept for $token (sql/staging/create_later_consents_memo.sql); run after
-- sql/staging/clear_later_consents_memo.sql, so the memo holds the last answer only.
INSERT INTO staging.later_consents_memo
SELECT $token, customer_id, marketing_consent, source_file, source_row
FROM consent_rows
