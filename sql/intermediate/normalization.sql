-- How identity normalises a key, written once ('' counts as missing, i.e. NULL). Staged values are
-- already trimmed by the ingest (engagement_box.staging.contracts.WHITESPACE); erasure applies
-- the same trim to raw text first, then these macros (sql/erasure/create_normalize_macro.sql).
--   customer_id  as staged (exact match against staging.customers)
--   email        trimmed, lower case
--   handle       trimmed, lower case, leading '@' removed
-- No table is named here, so erasure can create these in a warehouse where identity never ran.
create or replace macro intermediate.normalized_email(value) as
    nullif(lower(trim(value)), '');

create or replace macro intermediate.normalized_handle(value) as
    nullif(ltrim(lower(trim(value)), '@'), '');
