-- The one recorded state of a table that is not keyed by as-of (as_of NULL), with its as_of.
-- {state_table}: engagement_box.incremental.STATE_TABLE.
SELECT as_of, state FROM work.{state_table}
WHERE table_name = $table AND as_of IS NULL
