-- The settings and model code an as-of's work rows were computed with, as work/version_inputs
-- recorded them.
SELECT settings, model_code FROM work.version_inputs WHERE as_of = $as_of
