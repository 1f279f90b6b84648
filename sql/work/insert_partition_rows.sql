-- The rows being written (`partition_rows`, registered by partitioned.write_partition), matched
-- to the table's columns by name.
INSERT INTO {schema}.{table} BY NAME SELECT * FROM partition_rows
