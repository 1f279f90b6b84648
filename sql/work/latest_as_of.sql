-- The as-of of the rows an earlier step wrote to work.{table} (each Spark run rebuilds them for
-- one as-of). Run on Spark, transpiled; {table} is the step's own table name.
SELECT max(as_of) FROM work.{table}
