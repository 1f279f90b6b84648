-- Parameters: $as_of (DATE).
DELETE FROM work.model_choice WHERE as_of = $as_of
