-- The model recorded for one as-of, before it is recorded again. {table} is personas.MODEL_TABLE.
DELETE FROM work.{table} WHERE as_of = $as_of
