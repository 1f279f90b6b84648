-- Whether the attached database $db (the file analysts have now) holds a staging.quarantine.
-- Parameters: $db (the attached database's name).
SELECT count(*) FROM duckdb_tables()
WHERE database_name = $db AND schema_name = 'staging' AND table_name = 'quarantine'
