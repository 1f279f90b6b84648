-- One as-of's influence network, carried from the earlier as-of it was computed at: no social
-- event was added in between, so the network is the same.
insert into work.influence_edges
select cast($as_of as date) as as_of, target_customer_id, actor_customer_id, weight
from work.influence_edges
where as_of = $previous_as_of
