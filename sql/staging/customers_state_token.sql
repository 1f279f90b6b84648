-- What the staged customer profiles and their quarantined rows are, as one text: every customers
-- file taken in (path, content, rules, rows staged), the staged profiles' count and the customers
-- rows in the quarantine (its repeats). Equal texts mean the same rows: a changed file, other
-- rules, a restaged repeat or an erasure of a profile or a repeat each changes one of them. The
-- token of the answers kept for a run's readers (sql/staging/create_later_consents_memo.sql,
-- sql/erasure/create_profile_key_carrier_memo.sql).
SELECT concat_ws(
    '|',
    (
        SELECT md5(coalesce(string_agg(
            concat_ws(':', source_file, sha256, coalesce(CAST(rules AS VARCHAR), '-'), rows_staged),
            ',' ORDER BY source_file
        ), ''))
        FROM staging.ingested_files
        WHERE source = 'customers'
    ),
    (SELECT CAST(count(*) AS VARCHAR) FROM staging.customers),
    (SELECT CAST(count(*) AS VARCHAR) FROM staging.quarantine WHERE source = 'customers')
)
