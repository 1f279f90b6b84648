-- A warehouse from before `history.<mart>` was a view: its base table of every version's rows
-- becomes history_rows.{mart} (then dropped: history/drop_legacy_table.sql, and the view made).
CREATE TABLE history_rows.{mart} AS SELECT * FROM history.{mart}
