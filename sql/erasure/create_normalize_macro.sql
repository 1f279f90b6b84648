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

CREATE OR REPLACE TEMP MACRO erasure_normalized_any(value, kind) AS CASE kind
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
END;

-- The same for text of ASCII characters only (as many bytes as characters): most keys in any
-- table. No invisible, full-width or non-ASCII space can be in it and NFC leaves it as it is,
-- so only the ASCII whitespace among the trimmed characters is left to trim. translate() and
-- trim() over the long character lists above cost 4-8 microseconds a value, most of an
-- erasure's time (2026-12-07: 785 against 200 ms for 100,000 emails; the tiny retailer's erase
-- 3.7 s). tests/test_erasure.py checks both paths give the same keys.
CREATE OR REPLACE TEMP MACRO erasure_ascii_trimmed(value) AS trim(value, E'\t\n\x0B\f\r ');

CREATE OR REPLACE TEMP MACRO erasure_normalized_ascii(value, kind) AS CASE kind
    WHEN 'email' THEN intermediate.normalized_email(rtrim(
        erasure_ascii_trimmed(regexp_replace(erasure_ascii_trimmed(value), '^mailto:', '', 'i')),
        E'\t\n\x0B\f\r .'
    ))
    WHEN 'handle' THEN intermediate.normalized_handle(erasure_ascii_trimmed(value))
    ELSE nullif(erasure_ascii_trimmed(value), '')
END;

CREATE OR REPLACE TEMP MACRO erasure_normalized(value, kind) AS CASE
    WHEN strlen(CAST(value AS VARCHAR)) = length(CAST(value AS VARCHAR))
        THEN erasure_normalized_ascii(CAST(value AS VARCHAR), kind)
    ELSE erasure_normalized_any(value, kind)
END;

-- Whether `value` is one of the person's keys `keys` (kind `kind`): list_contains(keys,
-- erasure_normalized(value, kind)), normalising only the values that may be one
-- (erasure_may_hold; also for a profile's list of handles, whose pieces are in its text). For text of
-- ASCII characters the normalised key is a piece of the value in lower case (the rules above
-- trim, drop `mailto:`, a leading `@` and trailing dots, and lower-case), so a value whose lower
-- case holds none of the keys' cannot be a key; any other text is normalised. Normalising every
-- value was nearly all of an erasure's time at 1M customers (10M orders' emails 16-18 s a
-- statement, 25 CPU-s; this test 1.3 s). tests/test_erasure.py checks both give the same rows.
CREATE OR REPLACE TEMP MACRO erasure_may_hold(value, keys) AS
    strlen(CAST(value AS VARCHAR)) <> length(CAST(value AS VARCHAR))
    OR list_bool_or(list_transform(keys, k -> contains(lower(CAST(value AS VARCHAR)), lower(k))));

CREATE OR REPLACE TEMP MACRO erasure_holds(value, keys, kind) AS
    erasure_may_hold(value, keys) AND list_contains(keys, erasure_normalized(value, kind))
