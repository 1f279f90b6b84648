-- Parameters: $as_of (DATE), $choice_as_of (DATE), $model (VARCHAR), $inputs (JSON text).
INSERT INTO work.model_choice (as_of, choice_as_of, model, inputs)
VALUES ($as_of, $choice_as_of, $model, $inputs)
