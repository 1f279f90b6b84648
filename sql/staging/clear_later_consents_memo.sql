-- The memo holds one answer: the last one (sql/staging/create_later_consents_memo.sql).
DELETE FROM staging.later_consents_memo
