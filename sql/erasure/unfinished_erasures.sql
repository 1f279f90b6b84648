-- The logged erasure requests whose files are not all rewritten yet, oldest first.
SELECT request_id
FROM staging.erasure_log
WHERE request_id NOT IN (SELECT request_id FROM staging.erasure_finished)
ORDER BY requested_at, request_id
