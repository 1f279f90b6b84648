-- The staged customer profiles' ids as erasure compares them (`erasure._follow_guest_ids`).
CREATE OR REPLACE TEMP VIEW erasure_profile_ids AS
SELECT erasure_normalized(customer_id, 'customer_id') AS customer_id
FROM staging.customers
