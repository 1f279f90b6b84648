-- Consecutive dated rates of one currency into the reporting currency ($currency) that differ by
-- more than a factor of $max_jump: a typo (95 for 0.095) or a row the wrong way round (1.5 USD
-- per AUD for 0.66), a decimal point moved (14.229 for 1.4229). A real rate does not move
-- fivefold from one dated rate to the next (summary.MAX_RATE_JUMP says why five); a
-- hyperinflation's rates are given on dates close enough that no step does. Both engines refuse
-- to convert with such rates (engagement_box/value/summary.py::rate_jumps_problem).
SELECT
    currency, previous_day, previous_rate, previous_file, previous_row,
    rate_day, rate, rate_file, rate_row
FROM (
    SELECT
        currency,
        lag(CAST("date" AS DATE)) OVER (PARTITION BY currency ORDER BY "date") AS previous_day,
        lag(rate) OVER (PARTITION BY currency ORDER BY "date") AS previous_rate,
        lag(source_file) OVER (PARTITION BY currency ORDER BY "date") AS previous_file,
        lag(source_row) OVER (PARTITION BY currency ORDER BY "date") AS previous_row,
        CAST("date" AS DATE) AS rate_day,
        rate,
        source_file AS rate_file,
        source_row AS rate_row
    FROM staging.fx_rates
    WHERE currency <> $currency
) AS steps
WHERE previous_rate IS NOT NULL
  -- (a relative 1e-9 over the factor: rates are DOUBLEs, and 0.0012 * 10 is above 0.012)
  AND (
      rate > previous_rate * $max_jump * (1 + 1e-9)
      OR previous_rate > rate * $max_jump * (1 + 1e-9)
  )
ORDER BY currency, rate_day
