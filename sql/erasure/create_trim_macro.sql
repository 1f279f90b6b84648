-- The characters the ingest trims (engagement_box.staging.contracts.TRIMMED: the whitespace
-- polars' str.strip_chars() removes, and the invisible characters zero-width space,
-- non-joiner, joiner, word joiner, byte-order mark and soft hyphen) and the invisible ones
-- alone (contracts.INVISIBLE), for this connection: set once here, not spelled out in each
-- macro, since DuckDB binds a macro's body at every use (the chr() chains cost 21 ms of
-- binding per key normalised in a query, most of an erasure on a small warehouse).
SET VARIABLE erasure_trimmed_characters = chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(32) || chr(133) || chr(160) || chr(5760) || chr(8192) || chr(8193) || chr(8194) || chr(8195) || chr(8196) || chr(8197) || chr(8198) || chr(8199) || chr(8200) || chr(8201) || chr(8202) || chr(8232) || chr(8233) || chr(8239) || chr(8287) || chr(12288)
    || chr(8203) || chr(8204) || chr(8205) || chr(8288) || chr(65279) || chr(173);

SET VARIABLE erasure_invisible_characters = chr(8203) || chr(8204) || chr(8205) || chr(8288) || chr(65279) || chr(173);

-- Text trimmed at both ends as the ingest trims it: staged values are trimmed
-- already, raw quarantined text and erasure requests are not. trim() alone would only remove
-- spaces. For this connection only.
CREATE OR REPLACE TEMP MACRO erasure_trimmed(value) AS trim(
    CAST(value AS VARCHAR),
    getvariable('erasure_trimmed_characters')
);

-- An email address or social handle without the invisible characters anywhere in it, as the
-- ingest stages it
-- (contracts.INVISIBLE; translate() drops the characters it has no replacement for).
CREATE OR REPLACE TEMP MACRO erasure_visible(value) AS translate(
    CAST(value AS VARCHAR),
    getvariable('erasure_invisible_characters'),
    ''
);

-- An email address without dots and the trimmed characters after it, any mix (`ann@x.com.`,
-- `ann@x.com .`: the root's dot), as the ingest stages it (validation.folded_contact).
CREATE OR REPLACE TEMP MACRO erasure_trailing_dots(value) AS rtrim(
    CAST(value AS VARCHAR),
    getvariable('erasure_trimmed_characters') || '.'
)
