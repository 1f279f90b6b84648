-- Keys staged more than once now that this ingest's rows are in, when the staged table held no
-- rows of other files before it: one aggregate over the table (cheaper than the semi-join of
-- repeated_keys_of_files.sql when every row is new). {table} and {key} come from the contracts'
-- allow-list.
CREATE OR REPLACE TEMP TABLE repeated_keys AS
SELECT {key} AS key_value
FROM staging.{table}
GROUP BY {key}
HAVING count(*) > 1
