-- Every column of a base table in this database whose name is one of the identifying columns
-- ($columns, the allow-list in pipelines/erasure.py), in every schema: staging, intermediate,
-- work, marts, history and any added later.
SELECT c.table_schema, c.table_name, c.column_name
FROM information_schema.columns AS c
JOIN information_schema.tables AS t
    ON t.table_catalog = c.table_catalog
    AND t.table_schema = c.table_schema
    AND t.table_name = c.table_name
WHERE t.table_type = 'BASE TABLE'
  AND c.table_catalog = current_database()
  AND c.table_schema NOT IN ('information_schema', 'pg_catalog')
  AND list_contains($columns::VARCHAR[], c.column_name)
ORDER BY c.table_schema, c.table_name, c.ordinal_position
