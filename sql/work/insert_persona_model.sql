-- The model in force at one as-of. {table} is personas.MODEL_TABLE.
INSERT INTO work.{table} VALUES ($as_of, $fitted_as_of, $inputs, $model)
