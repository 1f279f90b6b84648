-- Every version's rows of a mart, with its id, when work.<mart> is not kept per as-of (it has
-- no as_of column: no work row can be linked): the copied ones only. `mart` is quoted by the
-- caller.
SELECT * FROM history_rows.{mart}
