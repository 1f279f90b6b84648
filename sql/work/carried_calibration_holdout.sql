-- The calibration and holdout rows of an earlier as-of ($previous) that hold as of $as_of: the
-- customers none of whose orders changed (not in changed_customers.sql; that includes every
-- customer with an order on a day that moved from the holdout into the calibration window).
-- Their calibration orders and holdout purchases are the same, so every column is, except the
-- window lengths: T grows by the days the calibration end moved, the holdout is re-measured.
-- Parameters: $previous (DATE), $previous_calibration_end (DATE), $calibration_end (DATE),
-- $as_of (DATE).
select
    s.* exclude (as_of) replace (
        s.T_days
        + date_diff(
            'day', cast($previous_calibration_end as date), cast($calibration_end as date)
        ) as T_days,
        date_diff('day', cast($calibration_end as date), cast($as_of as date)) as holdout_days
    )
from work.calibration_holdout as s
anti join changed_customers as c using (customer_id)
where s.as_of = $previous
