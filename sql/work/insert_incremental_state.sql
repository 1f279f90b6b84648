-- The state of a table's rows of one as-of, written with them. {state_table}:
-- incremental.STATE_TABLE.
INSERT INTO work.{state_table} VALUES ($table, $as_of, $state)
