-- The merged person's email and consent of now (the most restrictive answer of their profiles,
-- a withdrawal staged since the identity step included): the view create_consent_of_now.sql
-- makes.
SELECT customer_id, email, marketing_consent FROM consent_of_now
