-- Replace a table of any schema with the frame the caller registers as frame_to_write, in one
-- statement (readers see old or new, never half): frames.write_frame, which the tests and
-- benchmarks set up tables with. `schema` and `table` are checked names.
CREATE OR REPLACE TABLE {schema}.{table} AS SELECT * FROM frame_to_write
