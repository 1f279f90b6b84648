-- The persona model in force at $as_of: the one recorded at the latest as-of at or before it.
-- {table} is personas.MODEL_TABLE.
SELECT as_of, fitted_as_of, inputs, model
FROM work.{table}
WHERE as_of <= $as_of
ORDER BY as_of DESC
LIMIT 1
