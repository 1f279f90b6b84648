-- The erasure requests the working database has logged.
SELECT request_id FROM staging.erasure_log
