-- The choice work/model_fit recorded for $as_of: the as-of whose holdout chose, the model, the
-- as-of whose fits and comparison it carried (NULL: chosen on this as-of's holdout), and why.
-- Parameters: $as_of (DATE).
select choice_as_of, model, carried_from, reason
from work.model_choice
where as_of = cast($as_of as date)
