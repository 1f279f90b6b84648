-- The recorded state of a table's rows of one as-of (as_of NULL: its one state), replaced by
-- insert_incremental_state.sql in the same transaction. {state_table}: incremental.STATE_TABLE.
DELETE FROM work.{state_table} WHERE table_name = $table AND as_of IS NOT DISTINCT FROM $as_of
