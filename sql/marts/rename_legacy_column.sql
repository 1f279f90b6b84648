-- A column renamed since a warehouse was written (dictionary.RENAMED), in a table of work,
-- marts or history_rows that has the old name and not the new one: `schema`, `table`, `old` and
-- `new` are names of the dictionary, checked.
ALTER TABLE {schema}.{table} RENAME COLUMN {old} TO {new}
