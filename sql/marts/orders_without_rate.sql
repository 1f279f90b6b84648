-- Completed orders up to the as-of date whose currency has no rate into the reporting currency:
-- left out of every value model, reported in the customer summary's metadata.
SELECT currency, count(*) AS orders
FROM staging.orders
WHERE status = 'completed'
  AND ordered_at < CAST($as_of AS DATE) + 1
  AND NOT list_contains(CAST($fx_currencies AS VARCHAR[]), currency)
GROUP BY currency
ORDER BY currency
