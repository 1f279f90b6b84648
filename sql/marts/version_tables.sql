-- The version tables and schemas present: (schema, table), with (schema, NULL) per schema, and
-- ('history', <name>) for a base table left in `history` by a warehouse from before
-- `history.<mart>` was a view (versions.ensure_version_tables moves its rows).
SELECT table_schema, table_name FROM information_schema.tables
WHERE (table_schema = 'marts'
       AND table_name IN ('snapshot_log', 'current_version', 'snapshots', 'segment_migration'))
   OR (table_schema = 'history_rows' AND table_name = 'from_work')
UNION ALL
SELECT schema_name, NULL FROM information_schema.schemata
WHERE schema_name IN ('work', 'history', 'history_rows') AND catalog_name = current_database()
UNION ALL
SELECT table_schema, 'base table ' || table_name FROM information_schema.tables
WHERE table_schema = 'history' AND table_type = 'BASE TABLE'
