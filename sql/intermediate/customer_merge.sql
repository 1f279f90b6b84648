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
-- before this file, shared with the Spark engine): only keys carried by two or more profiles make
-- edges, and each such key links its profiles to its first one (a star, not every pair, so a key
-- shared by k profiles gives 2(k - 1) edges, not k^2). Labels propagate over the edges in a
-- recursive CTE keyed by profile (USING KEY: each round keeps one label per profile and carries
-- on only from the profiles whose label fell), each profile taking the smallest rank it can
-- reach. A label only ever falls and never below 1, so the loop ends, after as many rounds as the
-- longest shortest path from a component's first profile (1 or 2 for ordinary duplicates).
-- Profiles that share nothing never enter the loop: they are their own person.
--
-- Columns
--   customer_id           the staged profile's id
--   resolved_customer_id  the person it belongs to (the surviving profile's id; its own id when
--                         it shares no email or handle with another profile)
--   profile_rank          the profile's place in the survivorship order (1 = earliest signup)
create or replace table intermediate.customer_merge as
with recursive
profiles as (
    select
        customer_id,
        row_number() over (order by min(signup_date) asc nulls last, customer_id asc) as rank
    from staging.customers
    where customer_id is not null
    group by customer_id
),

labels (rank, label) using key (rank) as (
    select distinct from_rank, from_rank from customer_merge_edges
    union
    select e.to_rank, min(l.label)
    from labels as l
    inner join customer_merge_edges as e on e.from_rank = l.rank
    inner join recurring.labels as r on r.rank = e.to_rank
    group by e.to_rank
    having min(l.label) < min(r.label)
)

select
    p.customer_id,
    coalesce(s.customer_id, p.customer_id) as resolved_customer_id,
    p.rank as profile_rank
from profiles as p
left join labels as l on l.rank = p.rank
left join profiles as s on s.rank = l.label
order by p.rank
