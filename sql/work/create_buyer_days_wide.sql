-- work.buyer_days with day_spend as the sums give it, DECIMAL(38, 4): a day's spend did not fit
-- DECIMAL(18, 4). The placeholder takes the text of buyer_days.sql, its identifiers filled by the
-- caller.
CREATE OR REPLACE TABLE work.buyer_days AS
{buyer_days}
