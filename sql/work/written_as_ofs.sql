-- The as-ofs work.{table} holds rows of ({table}: a base table of `work` with an as_of column,
-- from the catalog: marts/work_tables_by_as_of.sql).
SELECT DISTINCT as_of FROM work.{table} WHERE as_of IS NOT NULL
