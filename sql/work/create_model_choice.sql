-- The purchase model in force at each as-of (engagement_box/value/choice.py): the as-of whose
-- holdout chose it, the model, the as-of whose rows the run carried (NULL: chosen on this
-- as-of's holdout), why it chose or carried, and what the choice was made from (JSON). Written with
-- work.model_fit's rows of the as-of, in its transaction; retention trims it with the other
-- work tables.
CREATE TABLE IF NOT EXISTS work.model_choice (
    as_of DATE PRIMARY KEY,
    choice_as_of DATE NOT NULL,
    model VARCHAR NOT NULL,
    inputs JSON NOT NULL,
    carried_from DATE,
    reason VARCHAR
)
