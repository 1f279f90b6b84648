"""The horizons `customer_value` publishes, once: expected purchases over each of
`DAY_HORIZONS` days after the as-of (`expected_purchases_<d>d`), and the 10th and 90th
percentiles of the one over `RANGE_HORIZON` days (`expected_purchases_<d>d_p10`, `_p90`). The
scoring (`marts.score_table`), the data dictionary and the Spark engine's schema
(`spark/value.py`) read them here: a horizon added here is a column in all three. The CLV's
own horizon is the setting ENGAGEMENT_CLV_HORIZON_MONTHS."""

DAY_HORIZONS = (30, 90, 365)
# Not the last of DAY_HORIZONS by position: a horizon added after it would rename the published
# range columns under analysts' queries (a review added 730 days and lost `_365d_p10`).
RANGE_HORIZON = 365
if RANGE_HORIZON not in DAY_HORIZONS:  # (not an assert: `python -O` drops those)
    raise ValueError(f"RANGE_HORIZON {RANGE_HORIZON} is not one of DAY_HORIZONS {DAY_HORIZONS}")
