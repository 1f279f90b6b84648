-- One customer per person: every staged customer profile mapped to the person it belongs to.
--
-- The identity graph: nodes are the customer profiles (staging.customers ids); two profiles are
-- linked when they carry the same normalised email or the same normalised social handle (the
-- macros of sql/intermediate/rules.sql). A person is a connected component of that graph, taken
-- transitively: A and B sharing an email and B and C sharing a handle are one person.
--
-- Surviving id (resolved_customer_id): the component's first profile by earliest signup_date, then
-- smallest customer_id. Reasons: it is the person's oldest account, the one their history started
-- under; it is the profile that owned a shared email or handle before profiles were merged, so a
-- guest order or review resolved by email keeps the id it had; and a newer duplicate profile
-- joining the person never changes the id.
--
-- How: each profile gets its rank in that order. The edges (customer_merge_edges.sql, run just
-- before this file): only keys carried by two or more profiles make edges, and each such key
-- links its profiles to its first one (a star, not every pair, so a key shared by k profiles
-- gives 2(k - 1) edges, not k^2). The components are labelled outside SQL, each profile on an
-- edge with the smallest rank of its component (customer_merge_labels: rank, label), by
-- engagement_box/identity/components.py (DuckDB: scipy's connected components, one pass over
-- the edges) or engagement_box/spark/pipeline.py::component_labels (Spark: distributed, the
-- paths halved each round). A recursive CTE here took as many rounds as the longest path in a
-- component: a chain of profiles cost its length squared. Profiles that share nothing are on no
-- edge: they are their own person. Both engines run this file as it is.
--
-- Columns
--   customer_id           the staged profile's id
--   resolved_customer_id  the person it belongs to (the surviving profile's id; its own id when
--                         it shares no email or handle with another profile)
--   profile_rank          the profile's place in the survivorship order (1 = earliest signup)
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
