-- Merged days whose spend does not fit the DECIMAL(18, 4) of a narrow work.buyer_days (NULL, or
-- 1e14 and more): the caller widens the column first (widen_buyer_days_spend.sql).
SELECT count(*) FROM merged_buyer_days WHERE day_spend IS NULL OR abs(day_spend) >= 1e14
