-- Days of work.buyer_days whose spend did not fit DECIMAL(18, 4) (create_buyer_days_narrow.sql).
SELECT count(*) FROM work.buyer_days WHERE day_spend IS NULL
