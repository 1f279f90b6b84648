-- A warehouse from before marts.{mart} was a view had a table there, with a copy of the rows.
DROP TABLE marts.{mart}
