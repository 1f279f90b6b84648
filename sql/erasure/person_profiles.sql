-- The staged customer profiles of the person being erased (their customer ids, normalised), as
-- staged: (customer_id, email, social_handles), whose keys are kept by hash before they go
-- (engagement_box/governance/erasure.py::record_erased_profiles).
SELECT customer_id, email, social_handles
FROM staging.customers
WHERE list_contains($ids::VARCHAR[], erasure_normalized(customer_id, 'customer_id'))
