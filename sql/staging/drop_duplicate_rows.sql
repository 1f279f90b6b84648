-- The temp table of rows held back for a repeated key, once the ingest is done with it.
DROP TABLE IF EXISTS duplicate_rows
