-- What each incremental step's rows were computed from: one row per table and as-of (as_of NULL
-- for a table with one state), its state as JSON. {state_table}: incremental.STATE_TABLE.
CREATE TABLE IF NOT EXISTS work.{state_table} (table_name VARCHAR, as_of DATE, state JSON)
