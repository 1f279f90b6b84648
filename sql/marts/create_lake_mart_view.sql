-- In a DuckDB session over the lake (spark/lake.py::attach): one mart of the current version,
-- {schema}.{mart}, over its Parquet files. {files} is the folder's glob as a quoted literal: a
-- view binds no parameter. The caller quotes every piece.
CREATE OR REPLACE VIEW {schema}.{mart} AS
SELECT * FROM read_parquet({files}, hive_partitioning = false)
