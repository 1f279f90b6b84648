-- The Spark lake's quarantine ($files: the Parquet files of its current write) as a table of this
-- in-memory database, raw_values as JSON as in the warehouse's staging.quarantine: the erasure's
-- own statements then tell whether it holds the person (erasure.lake_quarantine_holds).
CREATE TABLE staging.quarantine AS
SELECT * REPLACE (CAST(raw_values AS JSON) AS raw_values)
FROM read_parquet($files)
