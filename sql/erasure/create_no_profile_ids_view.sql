-- No customer profile was ever staged: no id is a profile's (`erasure._follow_guest_ids`).
CREATE OR REPLACE TEMP VIEW erasure_profile_ids AS
SELECT CAST(NULL AS VARCHAR) AS customer_id
WHERE false
