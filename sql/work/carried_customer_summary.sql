-- The customer summaries of an earlier as-of ($previous) that hold as of $as_of: the customers
-- none of whose orders changed (not in changed_customers.sql). Their orders are the same, so
-- every column is, except T: the days from their first order to the new as-of.
-- Parameters: $previous (DATE), $as_of (DATE).
select
    s.* exclude (as_of) replace (
        date_diff('day', s.first_order_date, cast($as_of as date)) as T_days
    )
from work.customer_summary as s
anti join changed_customers as c using (customer_id)
where s.as_of = $previous
