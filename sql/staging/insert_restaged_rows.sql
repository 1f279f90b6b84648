-- Quarantined duplicates staged again (restaged_rows, a frame registered by the caller).
-- {table} and {columns}: the source's name and its staged columns.
INSERT INTO staging.{table} ({columns}) SELECT {columns} FROM restaged_rows
