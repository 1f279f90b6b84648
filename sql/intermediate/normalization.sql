-- How identity normalises a key, written once ('' counts as missing, i.e. NULL). Staged values are
-- already trimmed by the ingest (engagement_box.staging.contracts.WHITESPACE); erasure applies
-- the same trim to raw text first, then these macros (sql/erasure/create_normalize_macro.sql).
--   customer_id  as staged (exact match against staging.customers)
--   email        trimmed, lower case
--   handle       trimmed, lower case, leading '@' removed
-- Lower case is each letter's own (Unicode's simple mapping: DuckDB's lower, 'İ' -> 'i', 'Σ'
-- -> 'σ'). Spark's lower (Java's) makes 'İ' two characters and a final 'Σ' a 'ς', as Python
-- and polars do: the Spark engine expands these macros from
-- sql/spark_overrides/intermediate__normalization.macros.sql, which makes those two letters so first,
-- and so do erasure.normalize and erasure.normalized_expr (one person's 'İrem@…' and 'irem@…'
-- were one customer on DuckDB and two on Spark). Here, where lower needs no help, the replaces
-- would cost 1.5 CPU-s per 10M values.
-- No table is named here, so erasure can create these in a warehouse where identity never ran.
create or replace macro intermediate.normalized_email(value) as
    nullif(lower(trim(value)), '');

create or replace macro intermediate.normalized_handle(value) as
    nullif(ltrim(lower(trim(value)), '@'), '');
