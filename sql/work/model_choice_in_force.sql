-- The choice recorded at the latest as-of up to $as_of that also holds its holdout comparison
-- (a run that stopped between work/model_fit and work/model_validation left none to carry): that
-- as-of, the as-of whose holdout chose, the model, what the choice was made from (JSON). The
-- as-of itself counts: a second run of it carries what its first run carried, or chooses on its
-- holdout again. The steps that ask (the holdout, the fits) run before the run records its own
-- choice.
-- Parameters: $as_of (DATE).
select c.as_of, c.choice_as_of, c.model, c.inputs
from work.model_choice as c
where c.as_of <= cast($as_of as date)
    and exists (select 1 from work.model_validation as v where v.as_of = c.as_of)
order by c.as_of desc
limit 1
