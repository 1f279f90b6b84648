-- Completed orders up to the as-of date per currency: all of them, and those with no rate into
-- the reporting currency (no dated rate of their currency on or before their day, and none in
-- ENGAGEMENT_FX_RATES), which every value model leaves out. One pass over the staged orders.
-- The rule is create_currency_macros.sql's.
SELECT
    o.currency,
    count(*) FILTER (
        WHERE NOT has_reporting_rate(o.currency, r.rate, CAST($fx_currencies AS VARCHAR[]))
    ) AS left_out,
    count(*) AS completed
FROM staging.orders AS o
LEFT JOIN reporting_rates AS r
    ON o.currency = r.currency AND CAST(o.ordered_at AS DATE) = r.day
WHERE o.status = 'completed'
  AND o.ordered_at < CAST($as_of AS DATE) + 1
GROUP BY o.currency
ORDER BY o.currency
