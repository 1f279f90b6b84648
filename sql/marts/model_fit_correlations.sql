-- The fits' correlations (JSON), compared to 12 digits: DuckDB's parallel corr() may differ in
-- the last bit from run to run.
SELECT model, "window", frequency_spend_correlation FROM marts.model_fit ORDER BY ALL
