-- history.<mart>: every retained version's rows with its id, in one view. The two pieces
-- filled in: `mart`, quoted by the caller, and `select`, the relation history/version_rows.sql
-- (or history/copied_version_rows.sql) with its columns in the data dictionary's order
-- (versions.ordered_columns).
CREATE OR REPLACE VIEW history.{mart} AS {select}
