-- Each customer's engagement quadrant in the current version.
SELECT customer_id, quadrant FROM marts.engagement_value
