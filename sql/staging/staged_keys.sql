-- The keys staged by earlier ingests (the rows of the files being re-ingested are deleted
-- already): an ingest holds back rows that repeat them. {table} and {key} come from the
-- contracts' allow-list.
SELECT {key} FROM staging.{table}
