-- The customers of an earlier as-of's engagement values.
SELECT customer_id FROM work.engagement_value WHERE as_of = $as_of
