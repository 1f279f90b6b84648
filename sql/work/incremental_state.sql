-- The state recorded with a table's rows of one as-of (as_of NULL: its one state).
-- {state_table}: engagement_box.incremental.STATE_TABLE.
SELECT state FROM work.{state_table}
WHERE table_name = $table AND as_of IS NOT DISTINCT FROM $as_of
