-- Every raw row that failed its contract, with why. One row per bad raw row: `reason` and `column`
-- are the first failure in a fixed order (parse errors, then missing values, then checks);
-- `reasons` lists every failure as 'column:reason'. `raw_values` is the row as text, as JSON.
CREATE TABLE IF NOT EXISTS staging.quarantine (
    source      VARCHAR   NOT NULL,
    source_file VARCHAR   NOT NULL,
    source_row  BIGINT    NOT NULL,
    "column"    VARCHAR,
    reason      VARCHAR   NOT NULL,
    detail      VARCHAR,
    reasons     VARCHAR[] NOT NULL,
    raw_values  JSON      NOT NULL,
    run_id      VARCHAR,
    quarantined_at TIMESTAMP NOT NULL
)
