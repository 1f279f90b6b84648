-- The converged BG/NBD and Gamma-Gamma fits of the latest as-of before $as_of fitted with the
-- same time unit and penalizer: where work/model_fit's Newton steps start instead of a fit on a
-- sample of the rows (engagement_box/value/fitting.py). One row per window and model.
-- Parameters: $as_of (DATE), $unit (VARCHAR), $penalizer (DOUBLE).
with earlier as (
    select max(as_of) as as_of
    from work.model_fit
    where as_of < cast($as_of as date)
        and time_unit = $unit
        and penalizer = $penalizer
        and converged
        and model in ('bgnbd', 'gamma_gamma')
)

select f.as_of, f."window", f.model, f.params
from work.model_fit as f
inner join earlier as e on f.as_of = e.as_of
where f.time_unit = $unit
    and f.penalizer = $penalizer
    and f.converged
    and f.model in ('bgnbd', 'gamma_gamma')
order by f."window", f.model
