-- One as-of's influence network, before it is written again.
delete from work.influence_edges where as_of = $as_of
