-- work.buyer_days with day_spend as DECIMAL(18, 4) (64-bit), which every day's spend fits unless
-- one customer spends 1e14 in a day: the 128-bit DECIMAL(38, 4) the sums work in costs 3x more
-- to write and to read back. A wider value becomes NULL (count_overflowed_buyer_days.sql), and
-- the caller then writes the table again with create_buyer_days_wide.sql.
-- The placeholder takes the text of buyer_days.sql, its identifiers filled by the caller.
CREATE OR REPLACE TABLE work.buyer_days AS
SELECT * REPLACE (try_cast(day_spend AS DECIMAL(18, 4)) AS day_spend)
FROM ({buyer_days})
