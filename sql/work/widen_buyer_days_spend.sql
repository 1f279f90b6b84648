-- day_spend of work.buyer_days as DECIMAL(38, 4), the type its sums have: no value is cut.
ALTER TABLE work.buyer_days ALTER day_spend TYPE DECIMAL(38, 4)
