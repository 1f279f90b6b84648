-- The rows of work.buyer_days of the changed customers (changed_customers.sql): what the
-- summaries read to recompute those customers alone (the incremental path of
-- engagement_box/value/summary.py). For this connection only.
create or replace temp view changed_days as
select d.*
from work.buyer_days as d
semi join changed_customers as c using (customer_id)
