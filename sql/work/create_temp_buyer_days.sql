-- This connection's own orders per customer and day, for a summary that does not read the stored
-- work.buyer_days. The placeholder takes the text of buyer_days.sql, its identifiers filled by the
-- caller.
CREATE OR REPLACE TEMP TABLE buyer_days AS
{buyer_days}
