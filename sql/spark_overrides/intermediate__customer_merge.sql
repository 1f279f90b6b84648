-- Spark version of sql/intermediate/customer_merge.sql: the connected components only. The
-- edges come from sql/intermediate/customer_merge_edges.sql, which both engines run. DuckDB
-- finds the components with a recursive CTE `using key (rank)` (one label per profile, stops
-- when no label falls); Spark's recursive CTEs take neither `using key` nor UNION, so
-- `engagement_box/spark/pipeline.py::component_labels` propagates the smallest label over the
-- edges (the same fixed point) and this merge reads its result, `customer_merge_labels`
-- (rank, label). The profiles' ranks and the final select are the DuckDB file's.
create or replace table intermediate.customer_merge as
with
profiles as (
    select
        customer_id,
        row_number() over (order by min(signup_date) asc nulls last, customer_id asc) as rank
    from staging.customers
    where customer_id is not null
    group by customer_id
)

select
    p.customer_id,
    coalesce(s.customer_id, p.customer_id) as resolved_customer_id,
    p.rank as profile_rank
from profiles as p
left join customer_merge_labels as l on l.rank = p.rank
left join profiles as s on s.rank = l.label
order by p.rank
