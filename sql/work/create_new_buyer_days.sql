-- The new files' orders per customer and day (buyer_days.sql over new_orders.sql), which
-- merged_buyer_days.sql adds to the stored rows. For this connection only.
-- The placeholder takes the text of buyer_days.sql, its identifiers filled by the caller.
CREATE OR REPLACE TEMP TABLE new_buyer_days AS
{buyer_days}
