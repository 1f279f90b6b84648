-- The default as-of date: the day of the last completed order.
SELECT max(CAST(ordered_at AS DATE)) FROM staging.orders WHERE status = 'completed'
