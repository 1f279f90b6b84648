-- One row per person (merged profiles are one customer) with their earliest signup; the caller
-- keeps those signed up by the as-of.
SELECT customer_id, signup_date AS since
FROM intermediate.resolved_customers
