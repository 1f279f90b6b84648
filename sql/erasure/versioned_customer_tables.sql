-- The versioned marts (history.*) with a customer_id column.
SELECT DISTINCT table_name
FROM duckdb_columns()
WHERE database_name = current_database()
  AND schema_name = 'history'
  AND column_name = 'customer_id'
ORDER BY table_name
