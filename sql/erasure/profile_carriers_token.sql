-- What the staged customer profiles are made from, as one text: every customers file taken in
-- (path, content, rules, rows staged), the staged profiles' count and the erasure requests'.
-- Equal texts mean the same staged profiles (a changed file, other rules, a restaged repeat or
-- an erasure each changes it), for sql/erasure/create_profile_key_carrier_memo.sql.
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
    (SELECT CAST(count(*) AS VARCHAR) FROM staging.erasure_log)
)
