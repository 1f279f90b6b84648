-- The Spark engine's stored persona models (<lake>/models/persona_model.parquet, $path) as the
-- DuckDB engine's table, in an in-memory session, for personas.model_in_force and record_model.
-- {table} is personas.MODEL_TABLE.
CREATE TABLE work.{table} AS
SELECT as_of, fitted_as_of, inputs, model FROM read_parquet($path)
