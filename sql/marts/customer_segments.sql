-- Each customer's RFM segment in the current version.
SELECT customer_id, segment FROM marts.customer_rfm
