-- The identity graph's edges (the temporary table of customer_merge_edges.sql) for the connected
-- components (engagement_box/identity/components.py): profile ranks, both directions.
select from_rank, to_rank from customer_merge_edges
