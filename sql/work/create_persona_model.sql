-- The persona model in force at each as-of: the model's JSON, the as-of it was fitted at, and
-- the settings and code it was fitted with (`inputs`). {table} is personas.MODEL_TABLE.
CREATE TABLE IF NOT EXISTS work.{table} (
    as_of        DATE PRIMARY KEY,
    fitted_as_of DATE,
    inputs       JSON,
    model        JSON
)
