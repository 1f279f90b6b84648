-- The influence network each as-of's engagement values were computed with
-- (engagement_box/engagement/influence.py::reaction_edges): one row per (influencer, reactor)
-- pair and as-of, with the summed weight of the reactor's counted reactions. The next run takes it
-- from here when no social event was added (assets/engagement.py). The person's ids are in columns
-- the erasure finds (target_customer_id, actor_customer_id).
create table if not exists work.influence_edges (
    as_of date,
    target_customer_id varchar,
    actor_customer_id varchar,
    weight double
)
