-- One pair's rows (migration_rows: segment_migration.sql's result, registered by the caller).
INSERT INTO marts.segment_migration BY NAME SELECT * FROM migration_rows
