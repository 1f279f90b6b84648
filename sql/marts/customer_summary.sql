-- Per-customer purchase summary from completed orders: the BG/NBD and Gamma-Gamma sufficient
-- statistics in days, plus the RFM inputs. Matches lifetimes'
-- summary_data_from_transaction_data(freq='D', monetary_value_col=...):
--   order day      = the calendar day of ordered_at; spend is summed per customer and day;
--   frequency      = distinct order days - 1 (repeat purchase occasions);
--   recency_days   = last order day - first order day;
--   T_days         = $as_of - first order day;
--   monetary_value = mean day spend over the repeat days (first day dropped), 0 when frequency = 0,
--                    computed as (total spend - first day spend) / frequency in one pass.
--   order_count    = completed order rows (order_id is the staged key, unique after ingestion).
-- Parameters: $fx_currencies / $fx_rates (lists, or NULL for single-currency data), $as_of (DATE, observation end, inclusive: orders on that day count);
--             $start (DATE or NULL: orders before this day are ignored).
-- Rows come in no particular order (sorting 1M ids costs more than it is worth here): sort
-- downstream when order matters. The day filters compare ordered_at with day boundaries instead
-- of casting every row (same rows: ordered_at < as_of + 1 day <=> day(ordered_at) <= as_of).
with rates as (
    -- Reporting currency at rate 1 plus the configured FX rates; NULL lists = no conversion.
    select
        unnest(cast($fx_currencies as varchar[])) as currency,
        unnest(cast($fx_rates as decimal(18, 6)[])) as rate
),

daily as (
    select
        customer_id,
        cast(ordered_at as date) as order_day,
        min(ordered_at) as first_at,
        max(ordered_at) as last_at,
        count(*) as orders,
        sum(o.net_amount * coalesce(r.rate, 1)) as day_spend
    from staging.orders as o
    left join rates as r on r.currency = o.currency
    where status = 'completed'
        -- orders in a currency with no rate are left out (counted by the caller)
        and ($fx_currencies is null or r.rate is not null)
        and ordered_at < cast($as_of as date) + 1
        and ($start is null or ordered_at >= cast($start as date))
    group by customer_id, order_day
),

customers as (
    select
        customer_id,
        min(first_at) as first_order_at,
        max(last_at) as last_order_at,
        sum(orders) as order_count,
        count(*) as order_days,
        sum(day_spend) as total_spend,
        -- the first day's spend; first_at orders days like order_day (one timestamp per day)
        arg_min(day_spend, first_at) as first_day_spend
    from daily
    group by customer_id
)

select
    customer_id,
    first_order_at,
    last_order_at,
    cast(order_count as bigint) as order_count,
    order_days,
    total_spend,
    order_days - 1 as frequency,
    -- first / last order day = the day of the first / last order (fewer aggregates than
    -- min / max over order_day)
    date_diff('day', cast(first_order_at as date), cast(last_order_at as date)) as recency_days,
    date_diff('day', cast(first_order_at as date), cast($as_of as date)) as T_days,
    case
        when order_days > 1 then (total_spend - first_day_spend) / (order_days - 1)
        else 0.0
    end as monetary_value
from customers
