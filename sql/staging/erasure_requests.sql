-- Every erasure request that deleted a row of the warehouse, in order (versions.erasure_requests):
-- a request that matched no row (its rows_deleted is the empty map) changed nothing computed.
SELECT request_id FROM staging.erasure_log
WHERE CAST(rows_deleted AS VARCHAR) <> '{}'
ORDER BY request_id
