-- A row when a staged source holds any. {table}: the source's name, from the allow-list.
SELECT 1 FROM staging.{table} LIMIT 1
