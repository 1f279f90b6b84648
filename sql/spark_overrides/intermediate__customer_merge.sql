-- Spark version of sql/intermediate/customer_merge.sql: the same statement except the connected
-- components. DuckDB finds them with a recursive CTE `using key (rank)` (one label per profile,
-- stops when no label falls); Spark's recursive CTEs take neither `using key` nor UNION, so the
-- edges are a view here, `engagement_box/spark/pipeline.py::component_labels` propagates the
-- smallest label over them (the same fixed point), and the merge reads its result,
-- `customer_merge_labels` (rank, label). Keep the rest equal to the DuckDB file.
create or replace temporary view customer_merge_edges as
with
profiles as (
    select
        customer_id,
        row_number() over (order by min(signup_date) asc nulls last, customer_id asc) as rank
    from staging.customers
    where customer_id is not null
    group by customer_id
),

customer_handles as (
    select customer_id, explode(split(social_handles, ';')) as raw_value
    from staging.customers
    where social_handles is not null
),

profile_keys as (
    select p.rank, 'email' as key_type, intermediate.normalized_email(c.email) as key
    from staging.customers as c
    inner join profiles as p on p.customer_id = c.customer_id
    union
    select p.rank, 'handle', intermediate.normalized_handle(h.raw_value)
    from customer_handles as h
    inner join profiles as p on p.customer_id = h.customer_id
),

shared_keys as (
    select key_type, key, min(rank) as first_rank
    from profile_keys
    where key is not null
    group by key_type, key
    having count(distinct rank) > 1
),

star as (
    select distinct k.rank as profile, s.first_rank as first_profile
    from profile_keys as k
    inner join shared_keys as s on s.key_type = k.key_type and s.key = k.key
    where k.rank <> s.first_rank
),

edges as (
    select profile as from_rank, first_profile as to_rank from star
    union
    select first_profile, profile from star
)

select from_rank, to_rank from edges;

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
