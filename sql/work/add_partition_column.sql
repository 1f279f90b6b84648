-- A column the rows being written have and the table lacks (older as-ofs show NULL there).
-- Filled by the caller (a template): {table} the quoted schema.table, {column} the quoted column
-- name, {dtype} its type as DESCRIBE partition_rows gives it. DDL binds no parameter.
ALTER TABLE {table} ADD COLUMN {column} {dtype}
