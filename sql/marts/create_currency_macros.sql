-- The reporting-currency rule of the value-model summaries (customer_summary.sql and
-- calibration_holdout.sql), for this connection only. `currencies` / `rates` are the bound
-- lists of fx_parameters() (pipelines/value_models.py), NULL for single-currency data: then
-- amounts stay as staged and every order counts. Otherwise an order counts only if its currency
-- has a rate, and its amount is converted at that rate and rounded to the staged 4 decimal
-- places (a per-row lookup in the short lists costs less than joining a rates table).
CREATE OR REPLACE TEMP MACRO has_reporting_rate(currency, currencies) AS
    currencies IS NULL OR list_contains(currencies, currency);
CREATE OR REPLACE TEMP MACRO reporting_amount(amount, currency, currencies, rates) AS
    CASE
        WHEN currencies IS NULL THEN amount
        ELSE CAST(
            amount * CAST(rates AS DECIMAL(18, 6)[])[list_position(currencies, currency)]
            AS DECIMAL(18, 4)
        )
    END;
