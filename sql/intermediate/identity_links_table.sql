-- The identity links table, empty; `identity_links` and `identity_links_sources` fill it.
-- Compression is chosen per column instead of by DuckDB's per-segment analysis, which tried every
-- method on ~5.6M rows and cost more than the rest of the build: the few-valued label columns are
-- dictionary-encoded, the (mostly distinct) keys and customer ids FSST-compressed. Same data,
-- about half the write time.
create or replace table intermediate.identity_links (
    source varchar using compression dictionary,
    role varchar using compression dictionary,
    key_type varchar using compression dictionary,
    normalized_value varchar using compression fsst,
    customer_id varchar using compression fsst,
    match_rule varchar using compression dictionary,
    source_rows bigint
)
