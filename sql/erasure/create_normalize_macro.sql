-- A key as identity compares it, for this connection, in the ingest's order: the invisible
-- characters and the ingest's trim (create_trim_macro.sql), then Unicode's composed form (NFC)
-- as the ingest stages it (raw quarantined text, and rows staged under earlier rules, may be
-- decomposed), then identity's own rules (sql/intermediate/normalization.sql, the one
-- definition):
--   customer_id  trimmed (identity matches staged ids, which the ingest trimmed)
--   email        intermediate.normalized_email, without invisible characters anywhere
--   handle       intermediate.normalized_handle, without invisible characters anywhere
-- Emails and handles also with the full-width forms of ASCII read as ASCII, emails without a
-- leading `mailto:` and trailing dots, as the ingest stages them (contracts.FULL_WIDTH,
-- contracts.MAILTO_PATTERN: raw quarantined text, and rows staged under rules before 13).
-- Empty text is NULL. Python's twin is engagement_box.governance.erasure.normalize.
CREATE OR REPLACE TEMP MACRO erasure_half_width(value) AS translate(
    value,
    '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～',
    '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~'
);

CREATE OR REPLACE TEMP MACRO erasure_normalized(value, kind) AS CASE kind
    WHEN 'email' THEN intermediate.normalized_email(erasure_trailing_dots(erasure_trimmed(
        regexp_replace(
            nfc_normalize(erasure_half_width(erasure_trimmed(erasure_visible(value)))),
            '^mailto:', '', 'i'
        )
    )))
    WHEN 'handle' THEN intermediate.normalized_handle(
        nfc_normalize(erasure_half_width(erasure_trimmed(erasure_visible(value))))
    )
    ELSE nullif(nfc_normalize(erasure_trimmed(value)), '')
END
