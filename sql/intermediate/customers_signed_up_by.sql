-- One row per person (merged profiles), signed up by the as-of date (their earliest signup).
-- Run by both engines (the Spark engine transpiles it).
SELECT customer_id FROM intermediate.resolved_customers WHERE signup_date <= $as_of
