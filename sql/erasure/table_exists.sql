SELECT count(*) > 0
FROM information_schema.tables
WHERE table_catalog = current_database()
  AND table_schema = $schema
  AND table_name = $table
  AND table_type = 'BASE TABLE'
