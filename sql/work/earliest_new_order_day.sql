-- The day of the earliest order staged from the new orders files (NULL: none staged).
-- A plain filter on source_file, pushed into the scan (changed_customers.sql).
-- Parameters: $new_files (VARCHAR[]: staged source_file values).
select min(cast(ordered_at as date)) as first_day
from staging.orders
where source_file in (select unnest(cast($new_files as varchar[])))
