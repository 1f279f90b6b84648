-- The first $n rows of any table an asset wrote, for its metadata preview ({schema}.{table}
-- from the asset's own names; the caller masks personal columns).
SELECT * FROM {schema}.{table} LIMIT $n
