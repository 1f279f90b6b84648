-- A source's staged table, derived from its contract (ingestion.staged_table_ddl): the caller
-- fills in the quoted table name and the column definitions (identifiers from the allow-list).
CREATE TABLE IF NOT EXISTS staging.{table} ({columns})
