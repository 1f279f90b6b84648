-- The ENUM type of an enumerated column of a staged table (its name: "<source>_<column>",
-- quoted by the caller); the enumerated values are bound ($values).
CREATE TYPE IF NOT EXISTS staging.{type} AS ENUM (SELECT unnest(CAST($values AS VARCHAR[])))
