-- Each quarantine row's rowid with its raw values, detail and column, which the caller masks
-- (`readers._masked_quarantine`; sql/marts/published_quarantine.sql).
SELECT rowid, CAST(raw_values AS VARCHAR), detail, "column" FROM staging.quarantine
