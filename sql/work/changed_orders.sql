-- Every order of the changed customers (changed_customers.sql), resolved as
-- intermediate.orders_resolution resolves it: what the summaries read to recompute those
-- customers alone. For this connection only.
create or replace temp view changed_orders as
select r.*
from intermediate.orders_resolution as r
where r.buyer_id in (select c.customer_id from changed_customers as c)
