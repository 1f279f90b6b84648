-- One row per person (merged profiles) signed up by the as-of date, with their earliest signup
-- (a customer's referral exposure starts there).
SELECT customer_id, signup_date AS since
FROM intermediate.resolved_customers
WHERE signup_date <= $as_of
