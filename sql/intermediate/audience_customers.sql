-- The merged person's email and consent (the most restrictive answer of their profiles).
SELECT customer_id, email, marketing_consent FROM intermediate.resolved_customers
