-- Parameters: $as_of (DATE), $choice_as_of (DATE), $model (VARCHAR), $inputs (JSON text),
-- $carried_from (DATE or NULL), $reason (VARCHAR).
INSERT INTO work.model_choice (as_of, choice_as_of, model, inputs, carried_from, reason)
VALUES ($as_of, $choice_as_of, $model, $inputs, $carried_from, $reason)
