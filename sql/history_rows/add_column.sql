-- A column a later version of the mart brings (older versions show NULL there). `mart` and
-- `column` are quoted by the caller; `type` is the work table's type of the column, as the
-- catalog gives it.
ALTER TABLE history_rows.{mart} ADD COLUMN {column} {type}
