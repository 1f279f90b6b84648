-- The rows of work.buyer_days that new orders touch, with the new orders added: the new files'
-- orders per customer and day (this connection's new_buyer_days, buyer_days.sql over
-- new_orders.sql) plus the stored row of the same customer and day, if there is one. Counts and
-- DECIMAL sums add up exactly, so the result equals buyer_days.sql over all orders.
-- For this connection only; delete_merged_buyer_days.sql then replaces the stored rows.
create or replace temp table merged_buyer_days as
with touched as (
    select b.customer_id, b.order_day, b.orders, b.day_spend
    from work.buyer_days as b
    semi join new_buyer_days as n using (customer_id, order_day)
    union all
    select customer_id, order_day, orders, day_spend
    from new_buyer_days
)

select
    customer_id,
    order_day,
    cast(sum(orders) as bigint) as orders,
    sum(day_spend) as day_spend
from touched
group by customer_id, order_day
