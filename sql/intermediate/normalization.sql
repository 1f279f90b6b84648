-- How identity normalises a key, written once ('' counts as missing, i.e. NULL). Staged values are
-- already trimmed by the ingest (engagement_box.staging.contracts.WHITESPACE); erasure applies
-- the same trim to raw text first, then these macros (sql/erasure/create_normalize_macro.sql).
--   customer_id  as staged (exact match against staging.customers)
--   email        trimmed, lower case
--   handle       trimmed, lower case, leading '@' removed
-- Lower case is each letter's own (Unicode's simple mapping, DuckDB's lower): 'İ' and 'Σ' are
-- made 'i' and 'σ' first, because Spark's lower (Java's) makes 'İ' two characters and a final
-- 'Σ' a 'ς', as Python and polars do (erasure.normalize, erasure.normalized_expr): one person's
-- 'İrem@…' and 'irem@…' were one customer on DuckDB and two on Spark.
-- No table is named here, so erasure can create these in a warehouse where identity never ran.
create or replace macro intermediate.normalized_email(value) as
    nullif(lower(replace(replace(trim(value), 'İ', 'i'), 'Σ', 'σ')), '');

create or replace macro intermediate.normalized_handle(value) as
    nullif(ltrim(lower(replace(replace(trim(value), 'İ', 'i'), 'Σ', 'σ')), '@'), '');
