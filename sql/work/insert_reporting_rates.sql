-- The dated rates of the fx_rates export into the reporting currency ($currency), one row per
-- currency and day: a rate holds from its date until the day before the currency's next dated
-- rate, the last one through the day of the last staged order. The summaries look an order's
-- day up with a hash join on (currency, day): an ASOF join on the timestamps sorted every order
-- and was 60 % of the summary's CPU at 10M orders. The reporting currency's own rate is always 1
-- (it is not taken from the export).
INSERT INTO reporting_rates
WITH dated AS (
    SELECT
        currency,
        CAST("date" AS DATE) AS valid_from,
        CAST(rate AS DECIMAL(38, 10)) AS rate,
        lead(CAST("date" AS DATE)) OVER (PARTITION BY currency ORDER BY "date") AS next_from
    FROM staging.fx_rates
    WHERE currency <> $currency
),
last_order AS (SELECT max(CAST(ordered_at AS DATE)) AS day FROM staging.orders)
-- (the series is unnested in a subquery and cast outside it: the same rows in DuckDB, and the
-- form Spark takes, where a generator cannot sit inside a cast)
SELECT currency, CAST(day AS DATE) AS day, rate
FROM (
    SELECT
        currency,
        unnest(generate_series(
            CAST(valid_from AS TIMESTAMP),
            CAST(coalesce(next_from - 1, greatest(last_order.day, valid_from)) AS TIMESTAMP),
            INTERVAL 1 DAY
        )) AS day,
        rate
    FROM dated, last_order
) AS days
