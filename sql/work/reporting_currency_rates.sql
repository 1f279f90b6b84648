-- Rows of the fx_rates export for the reporting currency itself ($currency) with a rate other
-- than 1: the export's rates are then into another currency (ENGAGEMENT_CURRENCY changed, the
-- export did not), and converting with them would publish wrong money.
SELECT count(*) AS rows, min(rate) AS lowest, max(rate) AS highest
FROM staging.fx_rates
WHERE currency = $currency AND rate <> 1
