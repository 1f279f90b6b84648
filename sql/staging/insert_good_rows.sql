-- A batch of rows to stage (good_rows, registered by the appending thread) into the staged
-- table. {table} and {columns}: the source's name and its staged columns.
INSERT INTO staging.{table} ({columns}) SELECT {columns} FROM good_rows
