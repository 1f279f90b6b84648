-- Every as-of's persona model, as the Spark engine stores them in the lake (JSON as text).
-- {table} is personas.MODEL_TABLE.
SELECT as_of, fitted_as_of, inputs::VARCHAR AS inputs, model::VARCHAR AS model
FROM work.{table}
ORDER BY as_of
