-- The dated rates of the fx_rates export into the reporting currency ($currency), for the
-- summaries' ASOF join (create_currency_macros.sql). A rate applies from the start of its day.
-- The reporting currency's own rate is always 1 (it is not taken from the export).
INSERT INTO reporting_rates
SELECT currency, CAST("date" AS TIMESTAMP), CAST(rate AS DECIMAL(38, 10))
FROM staging.fx_rates
WHERE currency <> $currency
