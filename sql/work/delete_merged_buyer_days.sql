-- The stored rows of work.buyer_days that merged_buyer_days.sql replaces (the customers and days
-- of the new orders); the caller inserts the merged rows in the same transaction.
delete from work.buyer_days as b
using merged_buyer_days as m
where b.customer_id = m.customer_id and b.order_day = m.order_day
