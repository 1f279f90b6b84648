-- The customers of this connection's changed_customers (changed_customers.sql).
SELECT count(*) FROM changed_customers
