-- One as-of's influence network, from the edges computed by this run (registered as
-- influence_edge_rows).
insert into work.influence_edges by name
select cast($as_of as date) as as_of, target_customer_id, actor_customer_id, weight
from influence_edge_rows
