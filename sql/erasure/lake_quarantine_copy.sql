-- The Spark lake's quarantine ($files: the Parquet files of its current write) as a table of this
-- in-memory database, with the columns the erasure's quarantine statements read and raw_values
-- as JSON, as in the warehouse's staging.quarantine: those statements then tell whether it holds
-- the person (erasure.lake_quarantine_holds).
CREATE TABLE staging.quarantine AS
SELECT source, source_file, reason, CAST(raw_values AS JSON) AS raw_values
FROM read_parquet($files)
