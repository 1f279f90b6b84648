-- The keys staged in a source's table as one text each (ingestion._key_sql); the caller fills in
-- the key expression and the quoted table name.
SELECT {key} FROM staging.{table}
