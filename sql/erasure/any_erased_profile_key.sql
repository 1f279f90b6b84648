-- A row when any erased profile's keys are recorded (none: identity has no carrier to add).
SELECT 1 FROM staging.erased_profile_keys LIMIT 1
