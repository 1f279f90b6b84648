-- The reporting-currency rule of the value-model summaries (customer_summary.sql,
-- calibration_holdout.sql, orders_without_rate.sql and customers_without_rate.sql), for this
-- connection only.
-- `reporting_rates` holds the dated rates of the fx_rates export per currency and day
-- (insert_reporting_rates.sql): buyer_days.sql joins each order to the rate of its currency on
-- its day, i.e. the latest dated rate on or before that day.
-- `currencies` / `rates` are the bound lists of fx_parameters() (engagement_box/value/summary.py:
-- the ENGAGEMENT_FX_RATES setting plus the reporting currency at 1), NULL for single-currency
-- data: then amounts stay as staged and every order counts. Otherwise an order counts only if
-- it has a dated rate or its currency is in the list, and its amount is converted at that rate.
-- Amounts work in DECIMAL(38, 4): the contract's largest amount (1e9) times its largest rate
-- (1e6) fits, and so do sums of millions of them; values are rounded to the staged 4 places.
CREATE OR REPLACE TEMP TABLE reporting_rates (
    currency VARCHAR, day DATE, rate DECIMAL(38, 10), PRIMARY KEY (currency, day)
);
CREATE OR REPLACE TEMP MACRO has_reporting_rate(currency, dated_rate, currencies) AS
    currencies IS NULL OR dated_rate IS NOT NULL OR list_contains(currencies, currency);
CREATE OR REPLACE TEMP MACRO reporting_amount(amount, currency, dated_rate, currencies, rates) AS
    CASE
        WHEN currencies IS NULL THEN amount
        -- at rate 1 (the reporting currency) the amount is as staged: no DECIMAL(38) product,
        -- which is most of this query's CPU when most orders need no conversion
        WHEN dated_rate IS NULL AND list_contains(currencies, currency)
            AND rates[list_position(currencies, currency)] = 1 THEN CAST(amount AS DECIMAL(38, 4))
        ELSE CAST(
            CAST(amount AS DECIMAL(38, 4)) * coalesce(
                dated_rate,
                CAST(rates AS DECIMAL(38, 10)[])[list_position(currencies, currency)]
            )
            AS DECIMAL(38, 4)
        )
    END;
