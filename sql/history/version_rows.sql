-- Every version's rows of a mart, with its id: the copied ones (history_rows.<mart>) and the
-- work rows versions link where the run wrote them (history_rows.from_work). Filled in: `mart`,
-- quoted by the caller, and `mart_literal`, the same name as a SQL string (a view binds no
-- parameter).
SELECT * FROM history_rows.{mart}
UNION ALL BY NAME
SELECT link.snapshot_id, w.*
FROM work.{mart} AS w
JOIN history_rows.from_work AS link ON link.as_of = w.as_of
WHERE link.mart = {mart_literal}
