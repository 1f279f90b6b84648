-- The influence network of an earlier as-of's engagement values, carried with its CKV and
-- social points (carried_engagement_parts.sql).
SELECT target_customer_id, actor_customer_id, weight
FROM work.influence_edges
WHERE as_of = $previous_as_of
