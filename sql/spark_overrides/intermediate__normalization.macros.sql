-- The Spark engine's sql/intermediate/normalization.sql (DuckDB macros, which the Spark engine
-- expands: `engagement_box/spark/sql.py::_macros`). Spark's lower is Java's full lower case:
-- 'İ' becomes 'i' and a combining dot, a final 'Σ' a 'ς'. Made 'i' and 'σ' first, the lower
-- case is each letter's own, as DuckDB's lower gives it.
create or replace macro intermediate.normalized_email(value) as
    nullif(lower(replace(replace(trim(value), 'İ', 'i'), 'Σ', 'σ')), '');

create or replace macro intermediate.normalized_handle(value) as
    nullif(ltrim(lower(replace(replace(trim(value), 'İ', 'i'), 'Σ', 'σ')), '@'), '');
