-- The normalisation of identity (pipelines/identity.py) as one function, for this connection:
--   customer_id  trimmed (whitespace at both ends)
--   email        trimmed, lower case
--   handle       trimmed, lower case, leading '@' removed
-- Empty text is NULL. Python's twin is pipelines.erasure.normalize (normalized_expr for polars).
CREATE OR REPLACE TEMP MACRO erasure_normalized(value, kind) AS nullif(
    CASE kind
        WHEN 'email' THEN lower(erasure_trimmed(value))
        WHEN 'handle' THEN ltrim(lower(erasure_trimmed(value)), '@')
        ELSE erasure_trimmed(value)
    END,
    ''
)
