-- marts.<mart>: a view of the current version's rows, with the columns of the version published
-- (`columns`, in the data dictionary's order), when work.<mart> is not kept per as-of (no work
-- row can be linked): the copied rows only. `mart` is quoted by the caller.
CREATE OR REPLACE VIEW marts.{mart} AS
SELECT {columns}
FROM history_rows.{mart}
WHERE snapshot_id = (SELECT snapshot_id FROM marts.current_version)
