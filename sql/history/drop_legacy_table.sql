-- The base table history.{mart} of a warehouse from before the views, once its rows are in
-- history_rows.{mart} (history_rows/create_from_legacy_history.sql).
DROP TABLE history.{mart}
