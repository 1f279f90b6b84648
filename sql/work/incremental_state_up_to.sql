-- The latest recorded state of a table keyed by as-of, at or before $as_of, with its as_of.
-- {state_table}: engagement_box.incremental.STATE_TABLE.
SELECT as_of, state FROM work.{state_table}
WHERE table_name = $table AND as_of <= $as_of ORDER BY as_of DESC LIMIT 1
