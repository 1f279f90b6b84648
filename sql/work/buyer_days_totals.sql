-- What work.buyer_days holds: buyers, completed orders, the first and last order day.
SELECT count(DISTINCT customer_id), coalesce(sum(orders), 0), min(order_day), max(order_day)
FROM work.buyer_days
