-- A source's staged rows of the moved files (file_moves, a frame registered by the caller) take
-- the path in column {new} of the move in place of the one in column {old}. {table}, {old} and
-- {new}: the source's name and file_moves' columns.
UPDATE staging.{table} AS t SET source_file = m.{new} FROM file_moves AS m
WHERE t.source_file = m.{old}
