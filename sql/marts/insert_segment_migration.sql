-- The migration of one consecutive pair of the chain (rows from segment_migration.sql).
INSERT INTO marts.segment_migration BY NAME SELECT * FROM migration_rows
