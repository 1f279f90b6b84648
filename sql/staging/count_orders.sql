-- The staged orders (a count DuckDB answers from the table's metadata).
SELECT count(*) FROM staging.orders
