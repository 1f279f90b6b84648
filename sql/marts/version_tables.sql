-- The version tables and schemas present: (schema, table), with (schema, NULL) per schema.
SELECT table_schema, table_name FROM information_schema.tables
WHERE table_schema = 'marts'
  AND table_name IN ('snapshot_log', 'current_version', 'snapshots', 'segment_migration')
UNION ALL
SELECT schema_name, NULL FROM information_schema.schemata
WHERE schema_name IN ('work', 'history') AND catalog_name = current_database()
