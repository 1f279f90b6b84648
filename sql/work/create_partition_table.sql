-- A partitioned table's first write: the columns (and types) of the rows being written
-- (`partition_rows`, registered by partitioned.write_partition), no rows yet.
-- {schema}.{table}: a table of the code's, checked by quote_identifier.
CREATE TABLE {schema}.{table} AS SELECT * FROM partition_rows LIMIT 0
